// RelayProtocol re-exported: frames and bodies are JSONValues, usable with `import RelayClient` alone.

@_exported import RelayProtocol

// The client library re-exported: tests import this module alone for both layers.

@_exported import RelayClient

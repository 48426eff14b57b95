// The allowed browser origins (`ALLOWED_ORIGINS`), and the origin checks and CORS echo built on them.

/// The allowed-origin set of PROTOCOL §2.3.
public struct OriginPolicy: Sendable {
    /// `*` was configured: every origin is allowed.
    public let allowsAll: Bool
    /// Normalized origins (`scheme://host[:port]`, or `null` for opaque ones).
    public let origins: Set<String>
    /// The raw configured entries, for the byte-exact CORS echo.
    public let rawEntries: Set<String>

    /// Builds the set from configured entries: trimmed, empties dropped, unparseable ones dropped.
    public init(entries: [String]) {
        var all = false
        var normalized = Set<String>()
        var raw = Set<String>()
        for entry in entries {
            let trimmed = entry.trimmingASCIIWhitespace()
            guard !trimmed.isEmpty else { continue }
            if trimmed == "*" {
                all = true
                continue
            }
            if let origin = Self.normalize(trimmed) {
                normalized.insert(origin)
                raw.insert(trimmed)
            }
        }
        self.allowsAll = all
        self.origins = normalized
        self.rawEntries = raw
    }

    /// True when nothing at all was configured (startup refuses that).
    public var isEmpty: Bool { !allowsAll && origins.isEmpty }

    /// The POST-endpoint check: no `Origin` is allowed; a present one must normalize into the set.
    public func allowsRequest(origin: String?) -> Bool {
        guard let origin else { return true }
        return allows(origin)
    }

    /// The mobile WebSocket check: `Origin` must be present and allowed (unless `*`).
    public func allowsMobile(origin: String?) -> Bool {
        if allowsAll { return true }
        guard let origin else { return false }
        return allows(origin)
    }

    private func allows(_ origin: String) -> Bool {
        if allowsAll { return true }
        guard let normalized = Self.normalize(origin) else { return false }
        return origins.contains(normalized)
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if any.
    public func corsAllowOrigin(for origin: String?) -> String? {
        if allowsAll { return "*" }
        guard let origin else { return nil }
        // Exact, byte-for-byte match against a configured entry or its normalized form.
        if rawEntries.contains(origin) || origins.contains(origin) { return origin }
        return nil
    }

    /// Reduces a URL to its origin serialization; `null` for schemes without a tuple origin.
    public static func normalize(_ text: String) -> String? {
        guard let url = ParsedURL(text) else { return nil }
        guard ["http", "https", "ws", "wss", "ftp"].contains(url.scheme) else { return "null" }
        guard let host = url.host, !host.isEmpty else { return nil }
        var out = url.scheme + "://" + host
        if let port = url.port, port != ParsedURL.defaultPort(url.scheme) { out += ":\(port)" }
        return out
    }
}

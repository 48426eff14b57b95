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

/// A small URL parser sufficient for origins, `PUBLIC_BASE_URL` and `relayWebSocketURL`:
/// `scheme:[//[userinfo@]host[:port]][path][?query][#fragment]`.
public struct ParsedURL: Sendable, Equatable {
    public var scheme: String
    public var host: String?
    public var port: Int?
    public var path: String
    public var query: String?

    public init?(_ text: String) {
        let trimmed = text.trimmingASCIIWhitespace()
        guard let colon = trimmed.firstIndex(of: ":") else { return nil }
        let scheme = trimmed[..<colon].lowercased()
        guard let first = scheme.first, first.isASCII, first.isLetter,
            scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        else { return nil }
        self.scheme = scheme
        var rest = trimmed[trimmed.index(after: colon)...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        if let q = rest.firstIndex(of: "?") {
            query = String(rest[rest.index(after: q)...])
            rest = rest[..<q]
        }
        let special = ["http", "https", "ws", "wss", "ftp"].contains(scheme)
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
            var authority = rest[..<authorityEnd]
            path = String(rest[authorityEnd...])
            if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
            if authority.hasPrefix("[") {
                guard let close = authority.firstIndex(of: "]") else { return nil }
                host = String(authority[...close]).lowercased()
                let after = authority[authority.index(after: close)...]
                if after.hasPrefix(":") {
                    let p = after.dropFirst()
                    if !p.isEmpty {
                        guard p.allSatisfy(\.isASCIIDigit), let v = Int(p), (0...65535).contains(v) else { return nil }
                        port = v
                    }
                } else if !after.isEmpty {
                    return nil
                }
            } else {
                if let c = authority.lastIndex(of: ":") {
                    let p = authority[authority.index(after: c)...]
                    if !p.isEmpty {
                        guard p.allSatisfy(\.isASCIIDigit), let v = Int(p), (0...65535).contains(v) else { return nil }
                        port = v
                    }
                    authority = authority[..<c]
                }
                let h = authority.lowercased()
                guard !h.contains(where: { " <>\\^|%".contains($0) }) else { return nil }
                host = h
            }
            if special, host?.isEmpty ?? true { return nil }
        } else {
            if special { return nil }
            path = String(rest)
        }
    }

    /// The default port of a special scheme.
    public static func defaultPort(_ scheme: String) -> Int? {
        switch scheme {
        case "http", "ws": 80
        case "https", "wss": 443
        case "ftp": 21
        default: nil
        }
    }

    /// `scheme://host[:port]path[?query]` with the default port removed.
    public var serialized: String {
        var out = scheme + "://" + (host ?? "")
        if let port, port != Self.defaultPort(scheme) { out += ":\(port)" }
        out += path.isEmpty ? "/" : path
        if let query { out += "?" + query }
        return out
    }
}

extension StringProtocol {
    /// Trims ASCII spaces, tabs and line breaks (what environment values and header lists use).
    public func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = lastIndex(where: { !isSpace($0) })!
        return String(self[start...end])
    }
}

extension StringProtocol {
    /// Trims Unicode white space and line breaks from both ends.
    public func trimmingUnicodeWhitespace() -> String {
        guard let start = firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let end = lastIndex(where: { !$0.isWhitespace })!
        return String(self[start...end])
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

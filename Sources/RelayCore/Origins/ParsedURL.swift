// A URL taken apart: enough for origins, `PUBLIC_BASE_URL` and `relayWebSocketURL`.

/// A small URL parser sufficient for origins, `PUBLIC_BASE_URL` and `relayWebSocketURL`:
/// `scheme:[//[userinfo@]host[:port]][path][?query][#fragment]`.
public struct ParsedURL: Sendable, Equatable {
    /// The scheme, lower-cased.
    public var scheme: String
    /// The host, lower-cased (an IPv6 literal keeps its brackets); nil when there is no `//` authority.
    public var host: String?
    /// The port written in the URL (0…65535), default or not; nil when none is written.
    public var port: Int?
    /// The path as written, possibly empty.
    public var path: String
    /// The query without its `?`; nil when there is none. The fragment is never kept.
    public var query: String?

    /// Parses `text`, ignoring surrounding ASCII white space; nil when it is not a URL of that shape
    /// or a special scheme (http, https, ws, wss, ftp) has no host.
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

extension Character {
    /// An ASCII digit, 0 to 9: what a port may be written with.
    var isASCIIDigit: Bool { isASCII && isNumber }
}

// NATS_URL: one server or a comma-separated list, with the credentials taken out for libnats.

import RelayProtocol

/// The servers and credentials of a `NATS_URL`:
/// `nats://[user:password@|token@]host[:port]` or `tls://…`, several separated by commas.
///
/// A server without a scheme is `nats://`; the default port is 4222; user, password and token are
/// percent-decoded; IPv6 literals go in brackets. All servers share one scheme and one set of
/// credentials (libnats applies them to the whole connection).
public struct NATSServerList: Sendable, Equatable, CustomStringConvertible {
    /// One server, without credentials.
    public struct Server: Sendable, Equatable {
        /// Host name or IP literal (an IPv6 literal without its brackets).
        public var host: String
        /// TCP port.
        public var port: Int

        /// Creates a server entry.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// How the client authenticates.
    public enum Credentials: Sendable, Equatable {
        /// No credentials in the URL.
        case none
        /// `user:password@`.
        case user(String, password: String)
        /// `token@`.
        case token(String)
    }

    /// The servers, in the order given.
    public var servers: [Server]
    /// Credentials for every server.
    public var credentials: Credentials
    /// True for `tls://`: the connection must use TLS.
    public var tls: Bool

    /// The default NATS client port.
    public static let defaultPort = 4222

    /// Parses `NATS_URL` (surrounding whitespace ignored).
    public init(parsing text: String) throws(NATSConfigurationError) {
        let entries = text.split(separator: ",", omittingEmptySubsequences: false).map(trimmed)
        guard !(entries.count == 1 && entries[0].isEmpty) else { throw NATSConfigurationError("NATS_URL is empty") }
        var servers: [Server] = []
        var credentials: Credentials?
        var tls: Bool?
        for (index, entry) in entries.enumerated() {
            let number = index + 1
            let parsed = try Self.parseEntry(entry, number: number)
            if let tls, tls != parsed.tls {
                throw NATSConfigurationError("NATS_URL: servers mix nats:// and tls://; use one scheme for all")
            }
            tls = parsed.tls
            if parsed.credentials != .none {
                if let credentials, credentials != parsed.credentials {
                    throw NATSConfigurationError("NATS_URL: servers carry different credentials; give the same to each, or to one")
                }
                credentials = parsed.credentials
            }
            servers.append(parsed.server)
        }
        self.servers = servers
        self.credentials = credentials ?? .none
        self.tls = tls ?? false
    }

    /// Creates a list from its parts.
    public init(servers: [Server], credentials: Credentials = .none, tls: Bool = false) {
        self.servers = servers
        self.credentials = credentials
        self.tls = tls
    }

    /// The server URLs handed to libnats: `scheme://host:port`, no credentials.
    public var serverURLs: [String] {
        servers.map { "\(tls ? "tls" : "nats")://\(Self.hostForURL($0.host)):\($0.port)" }
    }

    /// The list with secrets masked, for logs: `nats://alice:***@host:4222`, `tls://***@host:4222`.
    public var description: String {
        let userinfo: String
        switch credentials {
        case .none: userinfo = ""
        case .user(let user, _): userinfo = "\(user):***@"
        case .token: userinfo = "***@"
        }
        return servers.map { "\(tls ? "tls" : "nats")://\(userinfo)\(Self.hostForURL($0.host)):\($0.port)" }
            .joined(separator: ",")
    }

    // MARK: Parsing

    private static func parseEntry(
        _ entry: Substring, number: Int
    ) throws(NATSConfigurationError) -> (server: Server, credentials: Credentials, tls: Bool) {
        let which = "server \(number)"
        guard !entry.isEmpty else { throw NATSConfigurationError("NATS_URL: \(which) is empty (stray comma?)") }
        var rest = entry
        var tls = false
        if let separator = rest.firstRange(of: "://") {
            let scheme = rest[..<separator.lowerBound].lowercased()
            switch scheme {
            case "nats": tls = false
            case "tls": tls = true
            default:
                throw NATSConfigurationError("NATS_URL: \(which) has scheme \"\(printable(scheme))\"; use nats:// or tls://")
            }
            rest = rest[separator.upperBound...]
        }

        // The authority ends at the first "/", "?" or "#"; only an empty path may follow.
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            guard rest[end...] == "/" else {
                throw NATSConfigurationError("NATS_URL: \(which) has a path, query or fragment; give only scheme://host:port")
            }
            rest = rest[..<end]
        }

        var credentials = Credentials.none
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard !userinfo.isEmpty else { throw NATSConfigurationError("NATS_URL: \(which) has an empty user or token before \"@\"") }
            if let colon = userinfo.firstIndex(of: ":") {
                let user = try percentDecoded(userinfo[..<colon], what: "user", of: which)
                let password = try percentDecoded(userinfo[userinfo.index(after: colon)...], what: "password", of: which)
                guard !user.isEmpty else { throw NATSConfigurationError("NATS_URL: \(which) has a password but no user") }
                credentials = .user(user, password: password)
            } else {
                credentials = .token(try percentDecoded(userinfo, what: "token", of: which))
            }
        }

        let host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw NATSConfigurationError("NATS_URL: \(which) has an IPv6 address without its closing \"]\"")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw NATSConfigurationError("NATS_URL: \(which) has text after its IPv6 address") }
                portText = after.dropFirst()
            }
            guard !host.isEmpty, host.utf8.allSatisfy(isIPv6Byte) else {
                throw NATSConfigurationError("NATS_URL: \(which) has an invalid IPv6 address \"[\(printable(host))]\"")
            }
        } else {
            let colons = rest.filter { $0 == ":" }.count
            guard colons <= 1 else {
                throw NATSConfigurationError("NATS_URL: \(which) has more than one \":\"; put an IPv6 address in brackets")
            }
            if let colon = rest.firstIndex(of: ":") {
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            } else {
                host = rest
            }
            guard !host.isEmpty else { throw NATSConfigurationError("NATS_URL: \(which) has no host") }
            guard host.utf8.allSatisfy(isHostNameByte) else {
                throw NATSConfigurationError("NATS_URL: \(which) has an invalid host \"\(printable(host))\"")
            }
        }

        var port = defaultPort
        if let portText {
            guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(portText), (1...65535).contains(value)
            else {
                throw NATSConfigurationError("NATS_URL: port \"\(printable(portText))\" of \(which) is not in 1...65535")
            }
            port = value
        }
        return (Server(host: String(host), port: port), credentials, tls)
    }

    private static func hostForURL(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }
}

private func trimmed(_ text: Substring) -> Substring {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
    guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) }) else {
        return text[text.endIndex...]
    }
    return text[first...last]
}

private func isHostNameByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
        return true
    default:
        return false
    }
}

private func isIPv6Byte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"), UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: ":"), UInt8(ascii: "."):
        return true
    default:
        return false
    }
}

/// Caps what an error repeats of the input (never credentials) at a readable length.
private func printable(_ text: some StringProtocol) -> String {
    text.count > 64 ? "\(text.prefix(64))…" : String(text)
}

/// `%XX` decoding of a URL's user, password or token; the result must be UTF-8 without NUL
/// (libnats takes C strings).
private func percentDecoded(_ text: Substring, what: String, of which: String) throws(NATSConfigurationError) -> String {
    do {
        return try PercentDecoding.decode(text)
    } catch .invalidEscape {
        throw NATSConfigurationError("NATS_URL: the \(what) of \(which) has an invalid %-escape")
    } catch {
        throw NATSConfigurationError("NATS_URL: the \(what) of \(which) does not decode to UTF-8 text")
    }
}

// Secrets stay out of every rendering: `print`, `debugPrint`, `dump` and string interpolation.

extension NATSServerList: CustomDebugStringConvertible, CustomReflectable {
    /// Same as ``description``: secrets masked.
    public var debugDescription: String { description }

    /// The masked description instead of the stored credentials.
    public var customMirror: Mirror { Mirror(self, children: ["servers": description], displayStyle: .struct) }
}

extension NATSServerList.Credentials: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `none`, `user(alice, password: ***)` or `token(***)`.
    public var description: String {
        switch self {
        case .none: return "none"
        case .user(let user, _): return "user(\(user), password: ***)"
        case .token: return "token(***)"
        }
    }

    /// Same as ``description``.
    public var debugDescription: String { description }

    /// The masked description instead of the stored secrets.
    public var customMirror: Mirror { Mirror(self, children: ["credentials": description]) }
}

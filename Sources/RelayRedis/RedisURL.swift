// REDIS_URL: where Redis is and how to log in, parsed once at start.

import RelayProtocol

/// A parsed `REDIS_URL`.
///
/// Accepted forms:
/// - `redis://[[user]:password@]host[:port][/db]` — port 6379 and database 0 by default; user
///   and password are percent-decoded; an IPv6 host is written in brackets (`redis://[::1]:6380`).
/// - `unix:///path/to/redis.sock[?db=N][&user=U][&pass=P]` (also spelled `redis+unix://`).
///
/// `rediss://` is refused: the hiredis this relay links (Debian's 0.14) has no TLS.
///
/// ``description``, ``debugDescription`` and reflection never show the password.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Where the server listens.
    public enum Endpoint: Sendable, Equatable {
        /// A TCP host (name or IP literal, IPv6 without brackets) and port.
        case tcp(host: String, port: Int)
        /// A Unix domain socket path.
        case unix(path: String)
    }

    /// The port used when the URL names none.
    public static let defaultPort = 6379

    /// Where the server listens.
    public var endpoint: Endpoint
    /// The ACL user for `AUTH user password`; used only together with a password.
    public var username: String?
    /// The password for `AUTH`; nil for no `AUTH`.
    public var password: String?
    /// The logical database selected after connecting.
    public var database: Int

    /// A URL from its parts.
    public init(endpoint: Endpoint, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `string` (see the type's documentation for the accepted forms).
    public init(parsing string: String) throws(RedisURLError) {
        guard let schemeEnd = string.firstRange(of: "://") else {
            throw RedisURLError(.notAURL, "not a URL: expected redis://[[user]:password@]host[:port][/db] or unix:///path/to/redis.sock")
        }
        let scheme = string[..<schemeEnd.lowerBound].lowercased()
        let rest = string[schemeEnd.upperBound...]
        switch scheme {
        case "redis":
            self = try Self.parseTCP(rest)
        case "unix", "redis+unix":
            self = try Self.parseUnix(rest)
        case "rediss":
            throw RedisURLError(
                .tlsUnsupported,
                "rediss:// (TLS) is not supported: the hiredis this relay links (Debian's libhiredis 0.14) has no "
                    + "TLS support. Reach Redis over a private network or a service mesh that encrypts traffic, or run "
                    + "a local TLS sidecar (e.g. stunnel or ghostunnel) that connects to Redis with TLS, and point "
                    + "the Redis URL at the sidecar with redis://")
        default:
            let shown = scheme.isEmpty ? "an empty scheme" : "'\(scheme)://'"
            throw RedisURLError(
                .unsupportedScheme, "unsupported scheme \(shown); expected redis:// or unix:// (rediss:// is not supported)")
        }
    }

    /// The URL with the password replaced by `***`, safe for logs.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port):
            var text = "redis://"
            if username != nil || password != nil {
                text += Self.percentEncoded(username ?? "")
                if password != nil { text += ":***" }
                text += "@"
            }
            text += host.contains(":") ? "[\(host)]" : host
            text += ":\(port)/\(database)"
            return text
        case .unix(let path):
            var text = "unix://\(path)?db=\(database)"
            if let username { text += "&user=\(Self.percentEncoded(username))" }
            if password != nil { text += "&pass=***" }
            return text
        }
    }

    /// The same redacted text as ``description``.
    public var debugDescription: String { description }

    /// Reflection (`dump`, default struct printing) shows the redacted URL, not the password.
    public var customMirror: Mirror { Mirror(self, children: ["url": description], displayStyle: .struct) }

    // MARK: Parsing

    private static func parseTCP(_ rest: Substring) throws(RedisURLError) -> RedisURL {
        // authority ends at the first '/', '?' or '#'.
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let tail = rest[authorityEnd...]

        var username: String?
        var password: String?
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = try percentDecoded(userinfo[..<colon], field: "user name")
                username = user.isEmpty ? nil : user
                password = try percentDecoded(userinfo[userinfo.index(after: colon)...], field: "password")
            } else if !userinfo.isEmpty {
                // As in the reference client: a user without a password sends no AUTH.
                username = try percentDecoded(userinfo, field: "user name")
            }
        }

        let host: String
        var port = defaultPort
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw RedisURLError(.notAURL, "the IPv6 host lacks its closing ']'")
            }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let afterHost = authority[authority.index(after: close)...]
            if !afterHost.isEmpty {
                guard afterHost.hasPrefix(":") else {
                    throw RedisURLError(.notAURL, "unexpected text after the IPv6 host")
                }
                port = try parsePort(afterHost.dropFirst())
            }
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw RedisURLError(.notAURL, "invalid IPv6 host")
            }
        } else if let colon = authority.firstIndex(of: ":") {
            host = String(authority[..<colon])
            let portText = authority[authority.index(after: colon)...]
            guard !portText.contains(":") else {
                throw RedisURLError(.notAURL, "an IPv6 host must be in brackets, e.g. redis://[::1]:6379")
            }
            port = try parsePort(portText)
        } else {
            host = String(authority)
        }
        guard !host.isEmpty else { throw RedisURLError(.notAURL, "no host: expected redis://host[:port][/db]") }
        guard !host.contains(where: { $0.isWhitespace || $0 == "%" || $0 == "[" || $0 == "]" }) else {
            throw RedisURLError(.notAURL, "invalid host")
        }

        // What follows the authority: nothing, "/" or "/<db>".
        var database = 0
        if !tail.isEmpty {
            let dbText = tail.dropFirst()
            guard tail.first == "/", !dbText.contains(where: { $0 == "?" || $0 == "#" || $0 == "/" }) else {
                throw RedisURLError(
                    .unsupportedComponent, "a redis:// URL may end only in /<db>; it takes no query or fragment here")
            }
            if !dbText.isEmpty { database = try parseDatabase(dbText) }
        }
        return RedisURL(endpoint: .tcp(host: host, port: port), username: username, password: password, database: database)
    }

    private static func parseUnix(_ rest: Substring) throws(RedisURLError) -> RedisURL {
        let queryStart = rest.firstIndex(of: "?") ?? rest.endIndex
        let path = try percentDecoded(rest[..<queryStart], field: "socket path")
        guard path.hasPrefix("/"), path.count > 1 else {
            throw RedisURLError(.notAURL, "unix:// needs an absolute socket path, e.g. unix:///run/redis.sock")
        }
        var url = RedisURL(endpoint: .unix(path: path))
        guard queryStart < rest.endIndex else { return url }
        for parameter in rest[rest.index(after: queryStart)...].split(separator: "&") {
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0]
            let value = parts.count > 1 ? parts[1] : ""
            switch name {
            case "db": url.database = try parseDatabase(value)
            case "user": url.username = try percentDecoded(value, field: "user name")
            case "pass", "password": url.password = try percentDecoded(value, field: "password")
            default:
                throw RedisURLError(
                    .unsupportedComponent, "unix:// takes only db, user and pass parameters, not '\(name)'")
            }
        }
        return url
    }

    private static func parsePort(_ text: Substring) throws(RedisURLError) -> Int {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(text),
            (1...65535).contains(port)
        else {
            throw RedisURLError(.badPort, "invalid port '\(text)': expected 1-65535")
        }
        return port
    }

    private static func parseDatabase(_ text: Substring) throws(RedisURLError) -> Int {
        guard !text.isEmpty, text.count <= 10, text.allSatisfy({ $0.isASCII && $0.isNumber }), let database = Int(text),
            database <= Int(Int32.max)
        else {
            throw RedisURLError(.badDatabase, "invalid database '\(text)': expected a non-negative number such as 0")
        }
        return database
    }

    /// Decodes `%XX` escapes; the message never shows the value (it may be a password).
    private static func percentDecoded(_ text: Substring, field: String) throws(RedisURLError) -> String {
        do {
            return try PercentDecoding.decode(text)
        } catch .invalidEscape {
            throw RedisURLError(.notAURL, "invalid percent escape in the \(field)")
        } catch {
            throw RedisURLError(.notAURL, "the \(field) is not UTF-8 after percent-decoding")
        }
    }

    private static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            let unreserved =
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
            if unreserved {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let digits = Array("0123456789ABCDEF")
                result += "%\(digits[Int(byte >> 4)])\(digits[Int(byte & 0x0F)])"
            }
        }
        return result
    }
}

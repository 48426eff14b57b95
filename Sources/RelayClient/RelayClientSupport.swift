// Identifier generation, RFC 3339 timestamps, JSON parsing and URL parsing shared by the client types.

import Foundation
import RelayProtocol

/// Random identifiers in the shape the reference clients generate (PROTOCOL §1).
public enum RelayTokens {
    /// Base64url without padding of `byteCount` bytes from `SystemRandomNumberGenerator`.
    public static func random(byteCount: Int) -> String { Identifiers.random(bytes: byteCount) }

    /// A session id: 16 random bytes, 22 characters.
    public static func sessionID() -> String { random(byteCount: 16) }

    /// A join or desktop session token: 32 random bytes, 43 characters.
    public static func token() -> String { random(byteCount: 32) }

    /// Base64url (RFC 4648 §5) without padding.
    public static func base64URL(_ bytes: [UInt8]) -> String { Identifiers.base64URL(bytes) }
}

/// RFC 3339 timestamps in UTC, as ``Timestamp`` writes them.
public enum RelayTimestamp {
    /// Formats `date` like the reference relay (`…+00:00`, milliseconds unless a whole second),
    /// or with a `Z` suffix when `zulu` is true.
    public static func rfc3339(_ date: Date, zulu: Bool = false) -> String {
        let text = Timestamp.format(millis: Int64((date.timeIntervalSince1970 * 1000).rounded(.down)))
        return zulu ? String(text.dropLast(6)) + "Z" : text
    }

    /// The current time, formatted by ``rfc3339(_:zulu:)``.
    public static func now() -> String { rfc3339(Date()) }
}

/// Parses one JSON document (``JSONValue/parse(_:)-(Bytes)``), reporting a failure as
/// ``RelayClientError/invalidJSON(reason:text:)`` with the text, so a failing test shows what arrived.
func parseJSON<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(RelayClientError) -> JSONValue {
    do {
        return try JSONValue.parse(bytes)
    } catch {
        throw .invalidJSON(reason: error.description, text: String(decoding: bytes, as: UTF8.self))
    }
}

/// A parsed `http://` or `ws://` URL: where to connect and what to put on the request line.
struct RelayEndpoint: Sendable {
    /// Host to connect to (IPv6 literals without brackets).
    let host: String
    /// TCP port.
    let port: Int
    /// Value of the `Host` header.
    let hostHeader: String
    /// Percent-encoded path without a trailing slash (may be empty), used as a prefix.
    let basePath: String
    /// Percent-encoded path and query, as the request target of the URL itself.
    let requestTarget: String

    /// Parses `string`, accepting only `allowedScheme` (`http` or `ws`); the secure variant is
    /// rejected with ``RelayClientError/unsupportedScheme(_:)``.
    static func parse(_ string: String, allowedScheme: String) throws -> RelayEndpoint {
        guard let components = URLComponents(string: string), let scheme = components.scheme?.lowercased() else {
            throw RelayClientError.invalidURL(string)
        }
        guard scheme == allowedScheme else { throw RelayClientError.unsupportedScheme(string) }
        guard var host = components.host, !host.isEmpty else { throw RelayClientError.invalidURL(string) }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? 80
        let bracketed = host.contains(":") ? "[\(host)]" : host
        let hostHeader = port == 80 ? bracketed : "\(bracketed):\(port)"
        var path = components.percentEncodedPath
        var target = path.isEmpty ? "/" : path
        if let query = components.percentEncodedQuery { target += "?\(query)" }
        while path.hasSuffix("/") { path.removeLast() }
        return RelayEndpoint(host: host, port: port, hostHeader: hostHeader, basePath: path, requestTarget: target)
    }
}

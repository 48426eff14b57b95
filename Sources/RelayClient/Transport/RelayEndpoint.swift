// A relay URL taken apart: where to connect, whether over TLS, and what goes on the request line.

import Foundation

/// A parsed `http(s)://` or `ws(s)://` URL.
package struct RelayEndpoint: Sendable {
    /// Which pair of schemes a caller accepts.
    enum Kind: Sendable {
        case http, webSocket

        var schemes: (plain: String, secure: String) {
            switch self {
            case .http: ("http", "https")
            case .webSocket: ("ws", "wss")
            }
        }
    }

    /// Host to connect to (IPv6 literals without brackets).
    let host: String
    /// TCP port.
    let port: Int
    /// Whether the connection is TLS (`https`, `wss`).
    let isSecure: Bool
    /// Value of the `Host` header.
    let hostHeader: String
    /// Percent-encoded path without a trailing slash (may be empty), used as a prefix.
    let basePath: String
    /// Percent-encoded path and query, as the request target of the URL itself.
    let requestTarget: String

    /// Parses `string`, accepting the plain and secure schemes of `kind`.
    ///
    /// - Throws: ``RelayClientError/invalidURL(_:)`` without a scheme or host,
    ///   ``RelayClientError/unsupportedScheme(_:)`` for any other scheme.
    static func parse(_ string: String, kind: Kind) throws(RelayClientError) -> RelayEndpoint {
        guard let components = URLComponents(string: string), let scheme = components.scheme?.lowercased() else {
            throw .invalidURL(string)
        }
        let schemes = kind.schemes
        guard scheme == schemes.plain || scheme == schemes.secure else { throw .unsupportedScheme(string) }
        guard var host = components.host, !host.isEmpty else { throw .invalidURL(string) }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let isSecure = scheme == schemes.secure
        let defaultPort = isSecure ? 443 : 80
        let port = components.port ?? defaultPort
        let bracketed = host.contains(":") ? "[\(host)]" : host
        let hostHeader = port == defaultPort ? bracketed : "\(bracketed):\(port)"
        var path = components.percentEncodedPath
        var target = path.isEmpty ? "/" : path
        if let query = components.percentEncodedQuery { target += "?\(query)" }
        while path.hasSuffix("/") { path.removeLast() }
        return RelayEndpoint(
            host: host, port: port, isSecure: isSecure, hostHeader: hostHeader, basePath: path, requestTarget: target)
    }

    /// `host:port`, for messages.
    var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension RelayEndpoint {
    /// The browser-style origin of an `http(s)` URL (`https://relay.example`, a port only when it
    /// is not the scheme's default), or `nil` when it is no such URL.
    static func origin(of url: String) -> String? {
        guard let endpoint = try? parse(url, kind: .http) else { return nil }
        return (endpoint.isSecure ? "https://" : "http://") + endpoint.hostHeader.lowercased()
    }

    /// The session WebSocket URL a relay at `baseURL` serves by default (PROTOCOL §2.5): `ws` or
    /// `wss` by the base URL's scheme, path `/ws`.
    package static func defaultWebSocketURL(baseURL: String) -> String? {
        guard let endpoint = try? parse(baseURL, kind: .http) else { return nil }
        return (endpoint.isSecure ? "wss://" : "ws://") + endpoint.hostHeader + "/ws"
    }
}

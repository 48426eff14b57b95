// Why the relay refused or cut an HTTP connection or request: the reasons it counts.

/// Why the relay refused or cut an HTTP connection or request, as counted in
/// `relay_http_rejections_total{reason}`.
enum HTTPRejection: String, CaseIterable, Sendable {
    /// `MAX_HTTP_CONNECTIONS` open connections: a new one was closed at once.
    case connectionLimit = "connection_limit"
    /// No request for `HTTP_IDLE_TIMEOUT_MS`.
    case idleTimeout = "idle_timeout"
    /// A request head not complete within `HTTP_HEADER_TIMEOUT_MS` (408).
    case headerTimeout = "header_timeout"
    /// A request body not complete within `HTTP_BODY_TIMEOUT_MS` (408).
    case bodyTimeout = "body_timeout"
    /// Request line and headers over `MAX_HTTP_HEADER_BYTES` (431).
    case headerTooLarge = "header_too_large"
    /// A request line alone over `MAX_HTTP_HEADER_BYTES` (414).
    case uriTooLong = "uri_too_long"
    /// A body over `MAX_JSON_BYTES`: answered, then the connection closed unread (413).
    case bodyTooLarge = "body_too_large"
    /// Framing RFC 9112 forbids (400), or an expectation other than `100-continue` (417).
    case malformedRequest = "malformed_request"
}

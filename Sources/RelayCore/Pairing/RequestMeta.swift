// Who made an HTTP request to the pairing endpoints.

/// Who made an HTTP request: what the origin and rate-limit checks need.
public struct RequestMeta: Sendable {
    /// The client's IP: the peer address, or the `X-Forwarded-For` entry `TRUST_PROXY` allows; the
    /// per-IP budget's key.
    public var clientIP: String
    /// The request's `Origin` header; nil when absent (allowed for the POST endpoints).
    public var origin: String?
    /// The request's W3C `traceparent` header, if any: the trace its spans join.
    public var traceparent: String?
    /// The facts of one request.
    public init(clientIP: String, origin: String?, traceparent: String? = nil) {
        self.clientIP = clientIP
        self.origin = origin
        self.traceparent = traceparent
    }
}

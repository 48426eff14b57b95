// Who made an HTTP request to the pairing endpoints.

/// Who made an HTTP request: what the origin and rate-limit checks need.
public struct RequestMeta: Sendable {
    /// The client's IP: the peer address, or the `X-Forwarded-For` entry `TRUST_PROXY` allows; the
    /// per-IP budget's key.
    public var clientIP: String
    /// The request's `Origin` header; nil when absent (allowed for the POST endpoints).
    public var origin: String?
    /// The facts of one request.
    public init(clientIP: String, origin: String?) {
        self.clientIP = clientIP
        self.origin = origin
    }
}

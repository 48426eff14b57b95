// Who made an HTTP request to the pairing endpoints.

/// Who made an HTTP request: what the origin and rate-limit checks need.
public struct RequestMeta: Sendable {
    public var clientIP: String
    public var origin: String?
    public init(clientIP: String, origin: String?) {
        self.clientIP = clientIP
        self.origin = origin
    }
}

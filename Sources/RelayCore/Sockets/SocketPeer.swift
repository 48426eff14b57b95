// The facts about a connecting socket that auth and its logs need.

/// The facts about a connecting socket that auth and its logs need.
public struct SocketPeer: Sendable {
    /// The client's IP: the peer address, or the `X-Forwarded-For` entry `TRUST_PROXY` allows; the
    /// auth-failure budget's key and the `remote_ip` of auth-failure log lines.
    public var remoteIP: String
    /// The upgrade request's `Origin` header; a phone's must be allowed, a desktop's is not checked.
    public var origin: String?
    /// The upgrade request's `User-Agent` header, for auth-failure log lines.
    public var userAgent: String?
    /// The upgrade request's W3C `traceparent` header, if any: the trace the auth span joins.
    public var traceparent: String?
    /// The facts of one connecting socket.
    public init(remoteIP: String, origin: String?, userAgent: String?, traceparent: String? = nil) {
        self.remoteIP = remoteIP
        self.origin = origin
        self.userAgent = userAgent
        self.traceparent = traceparent
    }
}

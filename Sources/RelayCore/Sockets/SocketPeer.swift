// The facts about a connecting socket that auth and its logs need.

/// The facts about a connecting socket that auth and its logs need.
public struct SocketPeer: Sendable {
    public var remoteIP: String
    public var origin: String?
    public var userAgent: String?
    public init(remoteIP: String, origin: String?, userAgent: String?) {
        self.remoteIP = remoteIP
        self.origin = origin
        self.userAgent = userAgent
    }
}

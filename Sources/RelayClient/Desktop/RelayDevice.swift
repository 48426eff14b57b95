// A trusted device as `/devices/list` reports it (PROTOCOL §2.9).

import RelayProtocol

/// A phone paired with the session.
public struct RelayDevice: Sendable, Equatable {
    /// The device id (revoke it with ``RelayDesktopClient/revokeDevice(_:)``).
    public var deviceID: String
    /// The name it joined with.
    public var deviceName: String?
    /// Whether it has a socket on the node that answered.
    public var connected: Bool
    /// When it joined (RFC 3339).
    public var joinedAt: String?
    /// When it last authenticated (RFC 3339).
    public var lastSeenAt: String?
    /// What the desktop allowed it (extension 10); nil: the contract's full access.
    public var grant: DeviceGrant?

    init?(json: JSONValue) {
        guard let deviceID = json["deviceID"]?.stringValue else { return nil }
        self.deviceID = deviceID
        self.deviceName = json["deviceName"]?.stringValue
        self.connected = json["connected"]?.boolValue ?? false
        self.joinedAt = json["joinedAt"]?.stringValue
        self.lastSeenAt = json["lastSeenAt"]?.stringValue
        self.grant = DeviceGrant(fields: json)
    }
}

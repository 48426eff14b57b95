// What a frame from another node tells this node besides what it carries to the sockets.

import RelayProtocol

/// The relay-generated frames a node reacts to when another node forwards them: a `disconnect`
/// closes the local copy of the session, a `relay.desktop_status` updates remote presence.
/// One scan of the top-level members; anything else is forwarded without being built.
struct RelayFrameScan {
    var disconnectReason: DisconnectReason?
    var desktopConnected: Bool?
    /// A `relay.device_count`: its sender holds a phone socket of the session (or just lost one).
    var isDeviceCount = false

    init(_ payload: [UInt8]) {
        guard payload.first == UInt8(ascii: "{"),
            let fields = try? JSONValue.parseTopLevelMembers(payload, keeping: Self.keys),
            case .string(let type)? = fields["type"]
        else { return }
        switch type {
        case "disconnect":
            if case .string(let reason)? = fields["reason"] { disconnectReason = DisconnectReason(rawValue: reason) }
        case "relay.desktop_status":
            if case .bool(let connected)? = fields["desktopConnected"] { desktopConnected = connected }
        case "relay.device_count":
            isDeviceCount = true
        default:
            break
        }
    }

    private static let keys: Set<String> = ["type", "reason", "desktopConnected"]
}

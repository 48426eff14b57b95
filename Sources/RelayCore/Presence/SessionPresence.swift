// Who is connected to a session anywhere in the cluster, as the store's live claims say.

/// The live presence claims of a session, cluster-wide: the claims whose node still holds its
/// lease. What the contract's per-session answers are computed from in a cluster: `auth_ok`'s
/// `connectedDeviceCount`, `relay.device_count`, `/devices/list`'s `connected`, the desktop's
/// presence and `/pair/start`'s conflict rule.
public struct SessionPresence: Sendable, Equatable {
    /// Each live claim by slot.
    public var holders: [PresenceSlot: PresenceHolder]

    /// Presence from its live claims.
    public init(holders: [PresenceSlot: PresenceHolder] = [:]) {
        self.holders = holders
    }

    /// The node holding the desktop socket, if it is connected anywhere.
    public var desktopNode: String? { holders[.desktop]?.nodeID }

    /// The devices with a socket somewhere.
    public var connectedDevices: Set<String> {
        var devices = Set<String>()
        for slot in holders.keys { if case .device(let id) = slot { devices.insert(id) } }
        return devices
    }

    /// Devices connected anywhere: `connectedDeviceCount`.
    public var connectedDeviceCount: Int { connectedDevices.count }

    /// Devices connected anywhere but `deviceID` (one whose sockets are closing).
    public func connectedDeviceCount(excluding deviceID: String?) -> Int {
        guard let deviceID else { return connectedDeviceCount }
        return connectedDevices.subtracting([deviceID]).count
    }

    /// Whether a `/pair/join` is waiting for a decision on some node.
    public var hasPendingJoin: Bool { holders[.pendingJoin] != nil }

    /// A desktop, a phone or a pending join anywhere: a session in use, which `/pair/start` with
    /// another desktop token may not replace.
    public var hasActiveParticipant: Bool { !holders.isEmpty }
}

// Everything a session holds at runtime on this node.

import RelayProtocol

/// Everything a session holds at runtime, guarded by the session's own lock.
struct SessionState {
    var record: SessionRecord
    /// The stored version this copy reflects; an older stored record is never adopted over it.
    var version: UInt64
    var closed = false
    var desktop: (any RelayConnection)?
    /// The node holding the desktop socket when it is another node: from the cluster's presence at
    /// a phone's auth, `relay.desktop_status` from other nodes and probe answers. Cleared when that
    /// node says the desktop left, when its lease lapses and when the bus goes.
    var remoteDesktopNode: String?
    /// Other nodes that announced a phone of the session to this node's desktop: if one's lease
    /// lapses, its phones are gone and the desktop is told the new count.
    var remotePhoneNodes: Set<String> = []
    var mobiles: [String: MobileSocket] = [:]
    /// The same sockets as `mobiles`, kept as an array so a desktop frame's fan-out copies nothing.
    var mobileConnections: [any RelayConnection] = []
    var deviceCommandBuckets: [String: RateWindow] = [:]
    var sessionCommandBucket: RateWindow?
    var snapshotBuckets: [String: RateWindow] = [:]
    var pendingJoin: PendingJoin?
    /// The trace of the `relay.pair_request` last handed to this node's desktop, while tracing:
    /// the desktop's decision continues it.
    var pairRequestTrace: (requestID: String, traceparent: String)?

    var desktopConnected: Bool { desktop != nil || remoteDesktopNode != nil }
    var hasLocalSockets: Bool { desktop != nil || !mobiles.isEmpty }

    /// `connectedDeviceCount`: the cluster's live claims when the store answered, else this node's
    /// phone sockets; without `excluding` (a device whose sockets are closing).
    func connectedDeviceCount(live: SessionPresence?, excluding deviceID: String? = nil) -> Int {
        live?.connectedDeviceCount(excluding: deviceID) ?? mobiles.values.filter { $0.deviceID != deviceID }.count
    }

    /// The presence claims this node makes for the session: its sockets and its pending join.
    var localClaims: [(slot: PresenceSlot, holderID: String)] {
        var claims: [(slot: PresenceSlot, holderID: String)] = []
        if let desktop { claims.append((.desktop, desktop.connectionID)) }
        for socket in mobiles.values { claims.append((.device(socket.deviceID), socket.connection.connectionID)) }
        if let pendingJoin { claims.append((.pendingJoin, pendingJoin.requestID)) }
        return claims
    }

    mutating func touch(_ now: Int64) { record.touch(now) }

    mutating func addMobile(_ socket: MobileSocket) {
        mobiles[socket.connection.connectionID] = socket
        mobileConnections.append(socket.connection)
    }

    @discardableResult
    mutating func removeMobile(connectionID: String) -> MobileSocket? {
        guard let removed = mobiles.removeValue(forKey: connectionID) else { return nil }
        mobileConnections.removeAll { $0.connectionID == connectionID }
        return removed
    }

    /// Forgets a trusted device and its buckets; returns its token digests for the index.
    mutating func removeDevice(_ deviceID: String) -> [TokenDigest] {
        deviceCommandBuckets[deviceID] = nil
        snapshotBuckets[deviceID] = nil
        guard let device = record.devices.removeValue(forKey: deviceID) else { return [] }
        return [device.currentToken.digest] + device.retiredTokens.map(\.token.digest)
    }
}

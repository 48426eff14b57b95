// Everything a session holds at runtime on this node.

import RelayProtocol

/// Everything a session holds at runtime, guarded by the session's own lock.
struct SessionState {
    var record: SessionRecord
    /// The stored version this copy reflects; an older stored record is never adopted over it.
    var version: UInt64
    var closed = false
    var desktop: (any RelayConnection)?
    /// Set by `relay.desktop_status` and probe responses from other nodes.
    var remoteDesktopPresent = false
    var mobiles: [String: MobileSocket] = [:]
    /// The same sockets as `mobiles`, kept as an array so a desktop frame's fan-out copies nothing.
    var mobileConnections: [any RelayConnection] = []
    var deviceCommandBuckets: [String: RateWindow] = [:]
    var sessionCommandBucket: RateWindow?
    var snapshotBuckets: [String: RateWindow] = [:]
    var pendingJoin: PendingJoin?

    var desktopConnected: Bool { desktop != nil || remoteDesktopPresent }
    var hasLocalSockets: Bool { desktop != nil || !mobiles.isEmpty }

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

    /// Forgets a trusted device and its buckets; returns its tokens for the index.
    mutating func removeDevice(_ deviceID: String) -> [String] {
        deviceCommandBuckets[deviceID] = nil
        snapshotBuckets[deviceID] = nil
        guard let device = record.devices.removeValue(forKey: deviceID) else { return [] }
        return [device.currentToken] + device.retiredTokens.map(\.token)
    }
}

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
    /// Extension 11, on a node whose store keeps no history: the session's recent envelopes.
    var history = SessionHistory()
    /// Extension 11, on the desktop's node with a shared history: the last `seq` it recorded.
    var lastRecordedSeq: UInt64?
    /// Phone sockets here waiting for their first live envelope, and those replaying: while
    /// either is non-zero, fan-out takes ``liveRecipients(seq:frame:)``'s slow path.
    var awaitingFirstLive = 0
    var replaying = 0

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
        if socket.awaitingFirstLive { awaitingFirstLive += 1 }
        if socket.held != nil { replaying += 1 }
    }

    @discardableResult
    mutating func removeMobile(connectionID: String) -> MobileSocket? {
        guard let removed = mobiles.removeValue(forKey: connectionID) else { return nil }
        mobileConnections.removeAll { $0.connectionID == connectionID }
        if removed.awaitingFirstLive { awaitingFirstLive -= 1 }
        if removed.held != nil { replaying -= 1 }
        return removed
    }

    /// The phone sockets a desktop envelope goes to now (extension 11). Normally every one; a
    /// socket replaying a resume has the frame held instead, and one that has not had a live
    /// envelope yet notes this one's `seq` as its first.
    mutating func liveRecipients(seq: UInt64?, frame: [UInt8]) -> [any RelayConnection] {
        if replaying == 0 && (awaitingFirstLive == 0 || seq == nil) { return mobileConnections }
        var recipients: [any RelayConnection] = []
        recipients.reserveCapacity(mobiles.count)
        for key in Array(mobiles.keys) {
            guard var socket = mobiles[key] else { continue }
            if socket.held != nil {
                socket.held?.append((seq, frame))
            } else {
                if socket.awaitingFirstLive, let seq {
                    socket.awaitingFirstLive = false
                    socket.firstLiveSeq = seq
                    awaitingFirstLive -= 1
                }
                recipients.append(socket.connection)
            }
            mobiles[key] = socket
        }
        return recipients
    }

    /// Forgets a trusted device and its buckets; returns its token digests for the index.
    mutating func removeDevice(_ deviceID: String) -> [TokenDigest] {
        deviceCommandBuckets[deviceID] = nil
        snapshotBuckets[deviceID] = nil
        guard let device = record.devices.removeValue(forKey: deviceID) else { return [] }
        return [device.currentToken.digest] + device.retiredTokens.map(\.token.digest)
    }
}

// The cluster's presence in Redis: claims in one hash per session, alive while their node's lease is.

import RelayCore

extension RedisStateStore {
    /// The HASH of the session's presence claims.
    public func presenceKey(_ sessionID: String) -> String { "\(keyPrefix):presence:v1:\(sessionID)" }
    /// The prefix of the node leases; a node's lease is this plus its id.
    public var leaseKeyPrefix: String { "\(keyPrefix):node:v1:" }

    /// Sets the slot's claim; the hash then lives as long as a session record can.
    public func claim(_ slot: PresenceSlot, sessionID: String, holder: PresenceHolder) async throws -> SessionPresence {
        let expiry = max(sessionRetentionMillis, trustedSessionTTLMillis)
        return try await presenceScript(
            RedisPresenceScripts.claim, sessionID: sessionID,
            arguments: [slot.field, holder.encoded, leaseKeyPrefix, String(expiry)])
    }

    /// Clears the slot's claim if `holder` still holds it.
    public func release(_ slot: PresenceSlot, sessionID: String, holder: PresenceHolder) async throws -> SessionPresence {
        try await presenceScript(
            RedisPresenceScripts.release, sessionID: sessionID, arguments: [slot.field, holder.encoded, leaseKeyPrefix])
    }

    /// The session's live claims.
    public func presence(sessionID: String) async throws -> SessionPresence {
        try await presenceScript(RedisPresenceScripts.read, sessionID: sessionID, arguments: [leaseKeyPrefix])
    }

    /// Sets the node's lease to expire `ttlMillis` from now; false if it had expired or never was.
    public func renewLease(nodeID: String, ttlMillis: Int64) async throws -> Bool {
        let reply = try await connection.send([
            Array("EVAL".utf8), RedisPresenceScripts.renewLease, Array("1".utf8), Array((leaseKeyPrefix + nodeID).utf8),
            Array(String(max(ttlMillis, 1)).utf8),
        ]).throwingServerError()
        guard let existed = reply.integer else { throw RedisError(.unexpectedReply, "unexpected reply to EVAL: \(reply)") }
        return existed == 1
    }

    /// One MGET of the nodes' leases.
    public func liveNodes(_ nodeIDs: Set<String>) async throws -> Set<String> {
        guard !nodeIDs.isEmpty else { return [] }
        let ids = Array(nodeIDs)
        let reply = try await connection.send([Array("MGET".utf8)] + ids.map { Array((leaseKeyPrefix + $0).utf8) })
            .throwingServerError()
        guard let values = reply.array, values.count == ids.count else {
            throw RedisError(.unexpectedReply, "unexpected reply to MGET: \(reply)")
        }
        var live = Set<String>()
        for (id, value) in zip(ids, values) where value != .null { live.insert(id) }
        return live
    }

    private func presenceScript(_ script: [UInt8], sessionID: String, arguments: [String]) async throws -> SessionPresence {
        let command = [Array("EVAL".utf8), script, Array("1".utf8), Array(presenceKey(sessionID).utf8)] + arguments.map { Array($0.utf8) }
        let reply = try await connection.send(command).throwingServerError()
        guard let entries = reply.array, entries.count % 2 == 0 else {
            throw RedisError(.unexpectedReply, "unexpected reply to EVAL: \(reply)")
        }
        var holders: [PresenceSlot: PresenceHolder] = [:]
        for i in stride(from: 0, to: entries.count, by: 2) {
            // A field or holder this version cannot read is skipped, not fatal.
            guard let field = entries[i].text, let slot = PresenceSlot(field: field),
                let encoded = entries[i + 1].text, let holder = PresenceHolder(encoded: encoded)
            else { continue }
            holders[slot] = holder
        }
        return SessionPresence(holders: holders)
    }
}

// The single-node store: session records in this process's memory.

import Synchronization

/// The single-node store: records in this process's memory, version-guarded like the shared one.
/// Its presence claims and node leases behave as Redis's do (leases measured on `clock`), so
/// several nodes in one process can share it as a cluster's store.
public final class InMemoryStateStore: StateStore {
    private struct Presence {
        var claims: [String: [PresenceSlot: PresenceHolder]] = [:]
        /// Lease expiry by node id, in `clock` milliseconds.
        var leases: [String: Int64] = [:]
    }

    private let records = Mutex<[String: StoredSession]>([:])
    private let presenceState = Mutex(Presence())
    private let shared: Bool
    private let clock: any RelayClock

    /// `shared` true makes this store stand for a cluster's store, for several nodes in one process.
    public init(shared: Bool = false, clock: any RelayClock = SystemClock()) {
        self.shared = shared
        self.clock = clock
    }

    /// The `shared` flag the store was made with.
    public var isShared: Bool { shared }

    /// False: records hold token digests only.
    public var keepsTokensInClear: Bool { false }

    /// Every present record with its version.
    public func loadAll() async throws -> [(record: SessionRecord, version: UInt64)] {
        records.withLock { $0.values.compactMap { entry in entry.record.map { ($0, entry.version) } } }
    }

    /// The session as stored; absent at version 0 if it was never written.
    public func load(sessionID: String) async throws -> StoredSession {
        records.withLock { $0[sessionID] ?? StoredSession(record: nil, version: 0) }
    }

    /// Stores `record` at `version` unless a newer version is already stored.
    public func save(_ record: SessionRecord, version: UInt64) async throws {
        records.withLock { entries in
            if let stored = entries[record.sessionID], stored.version > version { return }
            entries[record.sessionID] = StoredSession(record: record, version: version)
        }
    }

    /// Stores `record` at `version` only if the stored version (0 if never written) is `expected`.
    public func compareAndSave(_ record: SessionRecord, version: UInt64, expected: UInt64) async throws -> Bool {
        records.withLock { entries in
            guard (entries[record.sessionID]?.version ?? 0) == expected else { return false }
            entries[record.sessionID] = StoredSession(record: record, version: version)
            return true
        }
    }

    /// Marks the session absent at `version` unless a newer version is already stored.
    public func delete(sessionID: String, version: UInt64) async throws {
        records.withLock { entries in
            if let stored = entries[sessionID], stored.version > version { return }
            entries[sessionID] = StoredSession(record: nil, version: version)
        }
    }

    /// Does nothing: records in memory never expire.
    public func keepAlive(_ records: [SessionRecord]) async throws {}

    /// The session whose record holds the token with `digest`, found by scanning every record.
    public func sessionID(forToken digest: TokenDigest) async throws -> String? {
        records.withLock { entries in
            entries.values.first { $0.record?.authTokenDigests.contains(digest) == true }?.record?.sessionID
        }
    }

    // MARK: Presence

    /// Sets the slot's holder; returns the live claims.
    public func claim(_ slot: PresenceSlot, sessionID: String, holder: PresenceHolder) async throws -> SessionPresence {
        let now = clock.nowMillis()
        return presenceState.withLock { p in
            p.claims[sessionID, default: [:]][slot] = holder
            return Self.live(&p, sessionID: sessionID, now: now)
        }
    }

    /// Clears the slot if `holder` holds it; returns the live claims.
    public func release(_ slot: PresenceSlot, sessionID: String, holder: PresenceHolder) async throws -> SessionPresence {
        let now = clock.nowMillis()
        return presenceState.withLock { p in
            if p.claims[sessionID]?[slot] == holder { p.claims[sessionID]?[slot] = nil }
            return Self.live(&p, sessionID: sessionID, now: now)
        }
    }

    /// The live claims.
    public func presence(sessionID: String) async throws -> SessionPresence {
        let now = clock.nowMillis()
        return presenceState.withLock { Self.live(&$0, sessionID: sessionID, now: now) }
    }

    /// Extends the node's lease; false when it had none alive.
    public func renewLease(nodeID: String, ttlMillis: Int64) async throws -> Bool {
        let now = clock.nowMillis()
        return presenceState.withLock { p in
            let held = (p.leases[nodeID] ?? .min) > now
            p.leases[nodeID] = now + ttlMillis
            return held
        }
    }

    /// The nodes whose lease has not expired.
    public func liveNodes(_ nodeIDs: Set<String>) async throws -> Set<String> {
        let now = clock.nowMillis()
        return presenceState.withLock { p in nodeIDs.filter { (p.leases[$0] ?? .min) > now } }
    }

    /// The session's claims whose node is alive; claims of lapsed nodes are dropped, as Redis's
    /// scripts drop them.
    private static func live(_ p: inout Presence, sessionID: String, now: Int64) -> SessionPresence {
        guard var claims = p.claims[sessionID] else { return SessionPresence() }
        claims = claims.filter { (p.leases[$0.value.nodeID] ?? .min) > now }
        p.claims[sessionID] = claims.isEmpty ? nil : claims
        return SessionPresence(holders: claims)
    }
}

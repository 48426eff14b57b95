import Synchronization

/// A record as the store holds it: `record` nil means absent or deleted. `version` is the stored
/// write version (0 when the session was never written); deletion keeps it, so a late write of an
/// older copy cannot bring the session back.
public struct StoredSession: Sendable, Equatable {
    public var record: SessionRecord?
    public var version: UInt64
    public init(record: SessionRecord?, version: UInt64) {
        self.record = record
        self.version = version
    }
}

/// Where session records live beyond this process (PROTOCOL §6.1). The core persists through it
/// and reloads from it; the in-memory store serves a single node, Redis serves a cluster.
///
/// Two kinds of write. `save` and `delete` are version-guarded (applied only if the stored
/// version is absent or not newer), as in the reference. `compareAndSave` is the cluster's
/// read-modify-write: it applies only if the stored version is exactly the one the caller read,
/// so two nodes can never both redeem one join token or rotate one device token (DECISIONS 4).
public protocol StateStore: Sendable {
    /// True when records outlive this process (reported as `redisPersistenceEnabled`).
    var isShared: Bool { get }
    /// Every stored record with its version (startup restore, forced reload).
    func loadAll() async throws -> [(record: SessionRecord, version: UInt64)]
    /// One session as stored.
    func load(sessionID: String) async throws -> StoredSession
    /// Stores `record` unless a newer version is already stored.
    func save(_ record: SessionRecord, version: UInt64) async throws
    /// Stores `record` at `version` only if the stored version is exactly `expected`; returns
    /// false, writing nothing, otherwise.
    func compareAndSave(_ record: SessionRecord, version: UInt64, expected: UInt64) async throws -> Bool
    /// Deletes the record unless a newer version is already stored.
    func delete(sessionID: String, version: UInt64) async throws
    /// Extends the expiry of sessions this node holds sockets for (DECISIONS 5); a store without
    /// expiry does nothing.
    func keepAlive(_ records: [SessionRecord]) async throws
    /// The session whose stored record holds `token` (desktop, device or retired device token),
    /// from the store's token index: one lookup, whatever the number of sessions. nil when the
    /// index has no entry: the token is unknown, or a node that writes no index stored it.
    func sessionID(forToken token: String) async throws -> String?
}

/// The single-node store: records in this process's memory, version-guarded like the shared one.
public final class InMemoryStateStore: StateStore {
    private let records = Mutex<[String: StoredSession]>([:])
    private let shared: Bool

    /// `shared` true makes this store stand for a cluster's store, for several nodes in one process.
    public init(shared: Bool = false) { self.shared = shared }

    public var isShared: Bool { shared }

    public func loadAll() async throws -> [(record: SessionRecord, version: UInt64)] {
        records.withLock { $0.values.compactMap { entry in entry.record.map { ($0, entry.version) } } }
    }

    public func load(sessionID: String) async throws -> StoredSession {
        records.withLock { $0[sessionID] ?? StoredSession(record: nil, version: 0) }
    }

    public func save(_ record: SessionRecord, version: UInt64) async throws {
        records.withLock { entries in
            if let stored = entries[record.sessionID], stored.version > version { return }
            entries[record.sessionID] = StoredSession(record: record, version: version)
        }
    }

    public func compareAndSave(_ record: SessionRecord, version: UInt64, expected: UInt64) async throws -> Bool {
        records.withLock { entries in
            guard (entries[record.sessionID]?.version ?? 0) == expected else { return false }
            entries[record.sessionID] = StoredSession(record: record, version: version)
            return true
        }
    }

    public func delete(sessionID: String, version: UInt64) async throws {
        records.withLock { entries in
            if let stored = entries[sessionID], stored.version > version { return }
            entries[sessionID] = StoredSession(record: nil, version: version)
        }
    }

    public func keepAlive(_ records: [SessionRecord]) async throws {}

    public func sessionID(forToken token: String) async throws -> String? {
        records.withLock { entries in
            entries.values.first { $0.record?.authTokens.contains(token) == true }?.record?.sessionID
        }
    }
}

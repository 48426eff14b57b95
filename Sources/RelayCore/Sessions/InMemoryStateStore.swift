// The single-node store: session records in this process's memory.

import Synchronization

/// The single-node store: records in this process's memory, version-guarded like the shared one.
public final class InMemoryStateStore: StateStore {
    private let records = Mutex<[String: StoredSession]>([:])
    private let shared: Bool

    /// `shared` true makes this store stand for a cluster's store, for several nodes in one process.
    public init(shared: Bool = false) { self.shared = shared }

    /// The `shared` flag the store was made with.
    public var isShared: Bool { shared }

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

    /// The session whose record holds `token`, found by scanning every record.
    public func sessionID(forToken token: String) async throws -> String? {
        records.withLock { entries in
            entries.values.first { $0.record?.authTokens.contains(token) == true }?.record?.sessionID
        }
    }
}

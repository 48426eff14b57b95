import Synchronization

/// Where session records live beyond this process (PROTOCOL §6.1). The core persists through it
/// and reloads from it; the in-memory store serves a single node, Redis serves a cluster.
///
/// Writes carry a per-session version: a store applies a write only if the version it holds for
/// the session is absent or not newer, so no node writes a stale copy back over a newer record.
public protocol StateStore: Sendable {
    /// True when records outlive this process (reported as `redisPersistenceEnabled`).
    var isShared: Bool { get }
    /// Every stored record with its version (startup restore).
    func loadAll() async throws -> [(record: SessionRecord, version: UInt64)]
    /// One stored record and its version, or nil.
    func load(sessionID: String) async throws -> (record: SessionRecord, version: UInt64)?
    /// Stores `record` unless a newer version is already stored.
    func save(_ record: SessionRecord, version: UInt64) async throws
    /// Deletes the record unless a newer version is already stored.
    func delete(sessionID: String, version: UInt64) async throws
}

/// The single-node store: records in this process's memory, version-guarded like the shared one.
public final class InMemoryStateStore: StateStore {
    private let records = Mutex<[String: (record: SessionRecord?, version: UInt64)]>([:])

    public init() {}

    public var isShared: Bool { false }

    public func loadAll() async throws -> [(record: SessionRecord, version: UInt64)] {
        records.withLock { $0.values.compactMap { entry in entry.record.map { ($0, entry.version) } } }
    }

    public func load(sessionID: String) async throws -> (record: SessionRecord, version: UInt64)? {
        records.withLock { entries in
            guard let entry = entries[sessionID], let record = entry.record else { return nil }
            return (record, entry.version)
        }
    }

    public func save(_ record: SessionRecord, version: UInt64) async throws {
        records.withLock { entries in
            if let stored = entries[record.sessionID], stored.version > version { return }
            entries[record.sessionID] = (record, version)
        }
    }

    public func delete(sessionID: String, version: UInt64) async throws {
        records.withLock { entries in
            if let stored = entries[sessionID], stored.version > version { return }
            // Keep the version so a late, older save cannot resurrect the session.
            entries[sessionID] = (nil, version)
        }
    }
}

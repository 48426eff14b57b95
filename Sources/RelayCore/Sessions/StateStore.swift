// Where session records live beyond this process, and the two kinds of write to them.

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
    /// True when the store writes tokens themselves (the reference layout, for a cluster mixed with
    /// reference relays): the core then keeps the tokens it learns in clear beside their digests.
    /// Otherwise records hold digests only.
    var keepsTokensInClear: Bool { get }
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
    /// The session whose stored record holds the token with `digest` (desktop, device or retired
    /// device token), from the store's token index: one lookup, whatever the number of sessions.
    /// nil when the index has no entry: the token is unknown, or a node that writes no index
    /// stored it.
    func sessionID(forToken digest: TokenDigest) async throws -> String?

    // MARK: Presence (cluster state with a lease)

    /// Claims `slot` of the session for `holder` and returns the session's live presence after the
    /// claim. The claim lives while `holder.nodeID`'s lease does (``renewLease(nodeID:ttlMillis:)``).
    func claim(_ slot: PresenceSlot, sessionID: String, holder: PresenceHolder) async throws -> SessionPresence
    /// Releases `slot` if `holder` still holds it; returns the live presence after the release.
    func release(_ slot: PresenceSlot, sessionID: String, holder: PresenceHolder) async throws -> SessionPresence
    /// The session's live presence.
    func presence(sessionID: String) async throws -> SessionPresence
    /// Extends this node's lease to `ttlMillis` from now; false when there was no lease to extend
    /// (the first renewal, or the lease lapsed and other nodes may have dropped its claims).
    func renewLease(nodeID: String, ttlMillis: Int64) async throws -> Bool
    /// Which of `nodeIDs` hold a live lease.
    func liveNodes(_ nodeIDs: Set<String>) async throws -> Set<String>

    // MARK: History (extension 11)

    /// True when the store keeps sessions' desktop history, so a phone resumes on any node; the
    /// core then records there and reads from there instead of its own memory.
    var keepsHistory: Bool { get }
    /// Queues `entry` at the end of the session's history, keeping at most `limits.maxFrames`
    /// entries and expiring them with `limits.ttlMillis`, without waiting: the sender of the frame
    /// is never held up. `completion` hears whether it was written.
    func appendHistory(sessionID: String, entry: HistoryEntry, limits: HistoryLimits, completion: @escaping @Sendable (Bool) -> Void)
    /// The session's history, oldest first (possibly beyond the limits: the reader applies them).
    func history(sessionID: String) async throws -> [HistoryEntry]
    /// Forgets the session's history.
    func deleteHistory(sessionID: String) async throws
}

extension StateStore {
    /// A store that keeps no history: each node keeps its own, in memory.
    public var keepsHistory: Bool { false }
    public func appendHistory(sessionID: String, entry: HistoryEntry, limits: HistoryLimits, completion: @escaping @Sendable (Bool) -> Void) {
        completion(false)
    }
    public func history(sessionID: String) async throws -> [HistoryEntry] { [] }
    public func deleteHistory(sessionID: String) async throws {}
}

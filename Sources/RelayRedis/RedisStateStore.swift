// The cluster's StateStore: session records in Redis, in the reference relay's key layout.

import Logging
import Metrics
import RelayCore
import RelayProtocol

/// Session records in Redis (PROTOCOL §6.1), shared by every node of a cluster.
///
/// Keys: `<prefix>:sessions:index:v1` (a SET of session ids), `<prefix>:session:v1:<id>` (the
/// session JSON) and `<prefix>:session:version:v1:<id>` (the write version). Every write is one
/// Lua script, so record, index and version change together.
///
/// Records are written in the digest layout (``SessionRecordJSON``, `schema_version` 2: no token,
/// only its SHA-256) unless the store was made with `tokenStorage: .plain`, which keeps the
/// reference's layout for a cluster mixed with reference relays. Both layouts are always read; a
/// plain record read by a digest-mode node is written back as digests at its next change.
///
/// Beside that layout, ours: a token index, so finding the session of a token is one GET instead
/// of a reload of every session. `<prefix>:token:v1:<sha256 hex of the token>` holds the session
/// id of every token that can authenticate (desktop, device, retired device), and
/// `<prefix>:session:tokens:v1:<id>` the SET of that session's digests, so a write drops the
/// entries of tokens it removed. Keys are digests, never tokens. Reference nodes neither write
/// nor read these keys; a record they write is found by the core's rate-limited full reload.
///
/// Expiry (DECISIONS 5): a record without devices lives `sessionRetentionMillis`, one with
/// trusted devices `trustedSessionTTLMillis`, refreshed by every write and by ``keepAlive(_:)``;
/// its version key expires with it. A delete keeps the version key for `sessionRetentionMillis`
/// so a late write of an older copy cannot bring the session back meanwhile. The index has no
/// expiry: ``loadAll()`` drops the ids whose record has expired.
public final class RedisStateStore: StateStore {
    /// The reference relay's default `REDIS_KEY_PREFIX`.
    public static let defaultKeyPrefix = "codexchat:remote-control:relay"

    /// The connection the store talks through (its owner shuts it down).
    public let connection: RedisConnection
    /// The connection record writes go through: their own when they `WAIT` for replicas, so a
    /// slow or missing replica holds back writes only, never the reads and presence renewals
    /// queued behind them (its owner shuts it down).
    public let writeConnection: RedisConnection
    /// The key prefix, without a trailing colon.
    public let keyPrefix: String
    /// The expiry of a session without trusted devices, and of a deleted session's version key.
    public let sessionRetentionMillis: Int64
    /// The expiry of a session with at least one trusted device.
    public let trustedSessionTTLMillis: Int64
    /// How records store their tokens (`REDIS_TOKEN_STORAGE`).
    public let tokenStorage: SessionRecordJSON.Layout
    /// Replicas that must confirm a write before it counts (`REDIS_MIN_REPLICAS_ACK`); 0 does not wait.
    public let minReplicasAck: Int
    /// How long `WAIT` may take (`REDIS_WAIT_TIMEOUT_MS`).
    public let waitTimeoutMillis: Int64
    private let waitShortfalls = Counter(label: "relay_redis_replication_shortfalls_total")
    private let logger: Logger
    private let indexKey: [UInt8]

    /// Sessions are read this many at a time, one pipeline each.
    static let loadChunk = 512

    /// A store over `connection`. Expiries below 1 ms are raised to 1 ms (Redis refuses `PX 0`).
    public init(
        connection: RedisConnection, keyPrefix: String = RedisStateStore.defaultKeyPrefix,
        sessionRetentionMillis: Int64 = 600_000, trustedSessionTTLMillis: Int64 = 30 * 24 * 3_600_000,
        tokenStorage: SessionRecordJSON.Layout = .digest, minReplicasAck: Int = 0, waitTimeoutMillis: Int64 = 500,
        writeConnection: RedisConnection? = nil, logger: Logger = Logger(label: "relay.redis.store")
    ) {
        self.writeConnection = writeConnection ?? connection
        self.tokenStorage = tokenStorage
        self.minReplicasAck = max(minReplicasAck, 0)
        self.waitTimeoutMillis = max(waitTimeoutMillis, 1)
        self.connection = connection
        self.keyPrefix = keyPrefix
        self.sessionRetentionMillis = max(sessionRetentionMillis, 1)
        self.trustedSessionTTLMillis = max(trustedSessionTTLMillis, 1)
        self.logger = logger
        self.indexKey = Array("\(keyPrefix):sessions:index:v1".utf8)
    }

    /// Always true: records outlive this process.
    public var isShared: Bool { true }

    /// True in the plain layout, whose records hold the tokens themselves.
    public var keepsTokensInClear: Bool { tokenStorage == .plain }

    /// The key holding the session JSON of `sessionID`.
    public func recordKey(_ sessionID: String) -> String { "\(keyPrefix):session:v1:\(sessionID)" }
    /// The key holding the write version of `sessionID`.
    public func versionKey(_ sessionID: String) -> String { "\(keyPrefix):session:version:v1:\(sessionID)" }
    /// The SET of stored session ids.
    public var indexKeyName: String { String(decoding: indexKey, as: UTF8.self) }
    /// The prefix of the token index keys; a key is this plus a token's ``TokenDigest/hex``.
    public var tokenKeyPrefix: String { "\(keyPrefix):token:v1:" }
    /// The SET of the token digests indexed for `sessionID`.
    public func tokenSetKey(_ sessionID: String) -> String { "\(keyPrefix):session:tokens:v1:\(sessionID)" }

    private func tokenDigests(_ record: SessionRecord) -> [[UInt8]] {
        record.authTokenDigests.map { Array($0.hex.utf8) }
    }

    /// The expiry a record gets: longer once a device trusts the session.
    public func ttlMillis(for record: SessionRecord) -> Int64 {
        record.devices.isEmpty ? sessionRetentionMillis : trustedSessionTTLMillis
    }

    // MARK: StateStore

    /// Every readable record with its version. Records that are malformed or of another schema
    /// are skipped (logged); ids whose record has expired are removed from the index.
    public func loadAll() async throws -> [(record: SessionRecord, version: UInt64)] {
        let members = try await connection.send([Array("SMEMBERS".utf8), indexKey]).throwingServerError()
        guard let members = members.array else { throw unexpected("SMEMBERS", members) }
        let ids = members.compactMap(\.text)

        var loaded: [(record: SessionRecord, version: UInt64)] = []
        loaded.reserveCapacity(ids.count)
        var expired: [String] = []
        var start = 0
        while start < ids.count {
            let chunk = ids[start..<min(start + Self.loadChunk, ids.count)]
            start += Self.loadChunk
            // Two MGETs a chunk: a reload of thousands of sessions is a handful of commands.
            let replies = try await connection.pipeline([
                [Array("MGET".utf8)] + chunk.map { Array(versionKey($0).utf8) },
                [Array("MGET".utf8)] + chunk.map { Array(recordKey($0).utf8) },
            ])
            guard let versions = try replies[0].throwingServerError().array, versions.count == chunk.count else {
                throw unexpected("MGET", replies[0])
            }
            guard let records = try replies[1].throwingServerError().array, records.count == chunk.count else {
                throw unexpected("MGET", replies[1])
            }
            for (offset, id) in chunk.enumerated() {
                let version = try parseVersion(versions[offset], sessionID: id)
                switch records[offset] {
                case .null:
                    expired.append(id)
                case .string(let bytes):
                    if let record = decode(bytes, sessionID: id) { loaded.append((record, version)) }
                case let other:
                    throw unexpected("GET", other)
                }
            }
        }
        if !expired.isEmpty { try await pruneIndex(expired) }
        return loaded
    }

    /// The stored record and version of `sessionID`; the record is nil when absent, deleted,
    /// expired or unreadable (logged).
    public func load(sessionID: String) async throws -> StoredSession {
        let replies = try await connection.pipeline([
            [Array("GET".utf8), Array(versionKey(sessionID).utf8)],
            [Array("GET".utf8), Array(recordKey(sessionID).utf8)],
        ])
        let version = try parseVersion(replies[0], sessionID: sessionID)
        switch replies[1] {
        case .null:
            return StoredSession(record: nil, version: version)
        case .string(let bytes):
            return StoredSession(record: decode(bytes, sessionID: sessionID), version: version)
        case let other:
            throw unexpected("GET", other)
        }
    }

    /// Writes `record` at `version` unless a newer version is stored (a stale write is silently
    /// dropped, as in the reference).
    public func save(_ record: SessionRecord, version: UInt64) async throws {
        _ = try await evaluate(
            RedisScripts.save, sessionID: record.sessionID,
            arguments: [
                Array(String(version).utf8), SessionRecordJSON.encode(record, layout: tokenStorage), Array(String(ttlMillis(for: record)).utf8),
                Array(tokenKeyPrefix.utf8),
            ] + tokenDigests(record))
    }

    /// Writes `record` at `version` only if the stored version (0 when absent) is `expected`.
    public func compareAndSave(_ record: SessionRecord, version: UInt64, expected: UInt64) async throws -> Bool {
        let applied = try await evaluate(
            RedisScripts.compareAndSave, sessionID: record.sessionID,
            arguments: [
                Array(String(version).utf8), SessionRecordJSON.encode(record, layout: tokenStorage), Array(String(ttlMillis(for: record)).utf8),
                Array(String(expected).utf8), Array(tokenKeyPrefix.utf8),
            ] + tokenDigests(record))
        return applied == 1
    }

    /// Deletes the record unless a newer version is stored; the version key stays, expiring
    /// after `sessionRetentionMillis`.
    public func delete(sessionID: String, version: UInt64) async throws {
        let deleted = try await evaluate(
            RedisScripts.delete, sessionID: sessionID,
            arguments: [Array(String(version).utf8), Array(String(sessionRetentionMillis).utf8), Array(tokenKeyPrefix.utf8)])
        // The session's history goes with it (extension 11).
        if deleted == 1 { try await deleteHistory(sessionID: sessionID) }
    }

    /// One GET in the token index.
    public func sessionID(forToken digest: TokenDigest) async throws -> String? {
        let reply = try await connection.send([Array("GET".utf8), Array((tokenKeyPrefix + digest.hex).utf8)])
            .throwingServerError()
        switch reply {
        case .null: return nil
        case .string(let bytes): return String(decoding: bytes, as: UTF8.self)
        case let other: throw unexpected("GET", other)
        }
    }

    /// Re-extends the expiry of these sessions' record and version keys, in one round trip.
    public func keepAlive(_ records: [SessionRecord]) async throws {
        guard !records.isEmpty else { return }
        var commands: [[[UInt8]]] = []
        commands.reserveCapacity(records.count * 2)
        for record in records {
            let ttl = Array(String(ttlMillis(for: record)).utf8)
            commands.append([Array("PEXPIRE".utf8), Array(recordKey(record.sessionID).utf8), ttl])
            commands.append([Array("PEXPIRE".utf8), Array(versionKey(record.sessionID).utf8), ttl])
            // The token index and the presence claims live as long as the record they belong to.
            commands.append([Array("PEXPIRE".utf8), Array(tokenSetKey(record.sessionID).utf8), ttl])
            commands.append([Array("PEXPIRE".utf8), Array(presenceKey(record.sessionID).utf8), ttl])
            for digest in tokenDigests(record) {
                commands.append([Array("PEXPIRE".utf8), Array(tokenKeyPrefix.utf8) + digest, ttl])
            }
        }
        for reply in try await connection.pipeline(commands) { _ = try reply.throwingServerError() }
    }

    // MARK: Helpers

    /// Runs a write script on the session's record, version and index keys; returns its integer.
    /// With `minReplicasAck` above 0, a `WAIT` follows in the same pipeline and the write counts
    /// only once that many replicas confirmed it (a stale write, which changed nothing, too: what
    /// it lost to is then confirmed).
    private func evaluate(_ script: [UInt8], sessionID: String, arguments: [[UInt8]]) async throws -> Int64 {
        var command: [[UInt8]] = [
            Array("EVAL".utf8), script, Array("4".utf8), Array(recordKey(sessionID).utf8), Array(versionKey(sessionID).utf8),
            indexKey, Array(tokenSetKey(sessionID).utf8), Array(sessionID.utf8),
        ]
        command.append(contentsOf: arguments)
        guard minReplicasAck > 0 else {
            let reply = try await writeConnection.send(command).throwingServerError()
            guard let result = reply.integer else { throw unexpected("EVAL", reply) }
            return result
        }
        let replies = try await writeConnection.pipeline([
            command, [Array("WAIT".utf8), Array(String(minReplicasAck).utf8), Array(String(waitTimeoutMillis).utf8)],
        ])
        guard let result = try replies[0].throwingServerError().integer else { throw unexpected("EVAL", replies[0]) }
        guard let acknowledged = try replies[1].throwingServerError().integer else { throw unexpected("WAIT", replies[1]) }
        if acknowledged < Int64(minReplicasAck) {
            waitShortfalls.increment()
            throw RedisError(
                .notReplicated,
                "\(acknowledged) of \(minReplicasAck) replicas confirmed the write within \(waitTimeoutMillis) ms (REDIS_MIN_REPLICAS_ACK)")
        }
        return result
    }

    /// Removes ids from the index whose record is still absent (checked in the script, so a
    /// record written since the read is kept).
    private func pruneIndex(_ sessionIDs: [String]) async throws {
        var command: [[UInt8]] = [Array("EVAL".utf8), RedisScripts.pruneIndex, Array(String(sessionIDs.count + 1).utf8), indexKey]
        for id in sessionIDs { command.append(Array(recordKey(id).utf8)) }
        for id in sessionIDs { command.append(Array(id.utf8)) }
        let removed = try await connection.send(command).throwingServerError()
        if let count = removed.integer, count > 0 {
            logger.debug("expired_sessions_pruned", metadata: ["count": "\(count)"])
        }
    }

    private func parseVersion(_ reply: RedisReply, sessionID: String) throws -> UInt64 {
        switch reply {
        case .null:
            return 0
        case .string(let bytes):
            guard let version = UInt64(String(decoding: bytes, as: UTF8.self)) else {
                logger.warning(
                    "redis session version unreadable; treated as 0",
                    metadata: ["session": "\(Identifiers.redacted(sessionID))"])
                return 0
            }
            return version
        case let other:
            throw unexpected("GET", other)
        }
    }

    private func decode(_ bytes: [UInt8], sessionID: String) -> SessionRecord? {
        do {
            let record = try SessionRecordJSON.decode(bytes, keepingClear: keepsTokensInClear)
            guard record.sessionID == sessionID else {
                logger.warning(
                    "redis session record skipped",
                    metadata: ["session": "\(Identifiers.redacted(sessionID))", "reason": "session_id does not match its key"])
                return nil
            }
            return record
        } catch {
            logger.warning(
                "redis session record skipped",
                metadata: ["session": "\(Identifiers.redacted(sessionID))", "reason": "\(error.description)"])
            return nil
        }
    }

    private func unexpected(_ command: String, _ reply: RedisReply) -> RedisError {
        RedisError(.unexpectedReply, "unexpected reply to \(command): \(reply)")
    }
}

import Logging
import RelayProtocol
import Synchronization

/// Why a write through the store did not happen.
enum StoreWriteFailure<Rejection: Error>: Error {
    /// The change itself refused the stored record (a used join token, a revoked device…).
    case rejected(Rejection)
    /// The store could not be read or written, or other nodes kept winning the race.
    case unavailable(any Error)
}

/// Other nodes won the compare-and-save race every time.
struct StoreContention: Error, CustomStringConvertible {
    var description: String { "the stored record kept changing under this write" }
}

/// The store is the truth (DECISIONS 3): every change to a session's durable record is a
/// read-modify-write with compare-and-save, and what was stored is then adopted by the local copy.
/// A node never writes its own copy back over a newer record, and a token issued, rotated or
/// revoked anywhere is what every node checks against.
extension SessionRecord {
    /// The same session rather than a new one with the same id (a `/pair/start` replacement).
    func isSameIncarnation(as other: SessionRecord) -> Bool {
        createdAtMillis == other.createdAtMillis
            && Identifiers.constantTimeEqual(desktopSessionToken, other.desktopSessionToken)
    }
}

extension Relay {
    // MARK: Writes

    /// Applies `change` to the stored record (nil: absent; setting nil deletes) with
    /// compare-and-save, retrying when another node wrote in between, then adopts the result.
    /// The loaded record is adopted even when `change` rejects it, so the local copy is current.
    @discardableResult
    func updateStored<T, E: Error>(
        _ sessionID: String, goneReason: DisconnectReason = .removedFromPersistence,
        _ change: (inout SessionRecord?) throws(E) -> T
    ) async throws(StoreWriteFailure<E>) -> (value: T, session: Session?) {
        for _ in 0..<8 {
            let stored: StoredSession
            do {
                stored = try await store.load(sessionID: sessionID)
            } catch {
                throw .unavailable(error)
            }
            var record = stored.record
            let value: T
            do throws(E) {
                value = try change(&record)
            } catch {
                adopt(stored, sessionID: sessionID, goneReason: goneReason)
                throw .rejected(error)
            }
            if record == stored.record {
                return (value, adopt(stored, sessionID: sessionID, goneReason: goneReason))
            }
            let next = StoredSession(record: record, version: stored.version + 1)
            let written: Bool
            do {
                if let record {
                    written = try await store.compareAndSave(record, version: next.version, expected: stored.version)
                } else {
                    try await store.delete(sessionID: sessionID, version: next.version)
                    written = true
                }
            } catch {
                throw .unavailable(error)
            }
            if written { return (value, adopt(next, sessionID: sessionID, goneReason: goneReason)) }
        }
        throw .unavailable(StoreContention())
    }

    /// Records activity in the stored record; failures are logged, never thrown.
    func touchStored(_ session: Session) async {
        let now = wallClockMillis()
        do {
            try await updateStored(session.id) { (record: inout SessionRecord?) throws(Never) in record?.touch(now) }
        } catch {
            logger.error("state store write failed", metadata: ["session": "\(Identifiers.redacted(session.id))", "error": "\(error)"])
        }
    }

    // MARK: Reads

    /// Reloads one session from the store into this node (PROTOCOL §6.2, DECISIONS 3).
    @discardableResult
    func reloadSession(_ sessionID: String, goneReason: DisconnectReason = .removedFromPersistence) async throws -> Session? {
        let stored = try await store.load(sessionID: sessionID)
        return adopt(stored, sessionID: sessionID, goneReason: goneReason)
    }

    /// Reloads every stored session; concurrent callers share one reload that started after they
    /// asked, so a token minted a moment ago on another node is found.
    func reloadAll() async throws {
        try await reloadGate.run { [self] in
            let records = try await store.loadAll()
            for (record, version) in records {
                adopt(StoredSession(record: record, version: version), sessionID: record.sessionID, goneReason: .removedFromPersistence)
            }
            if !records.isEmpty { logger.debug("reloaded sessions from store", metadata: ["count": "\(records.count)"]) }
        }
    }

    // MARK: Adoption

    /// Makes the local copy of a session match what the store holds: inserts it, replaces the
    /// record of a live copy (keeping sockets, buckets and pending joins), closes the sockets of
    /// devices that are gone, ends a replaced incarnation, or closes the copy when the record is
    /// gone. An older stored version than the local one is ignored.
    @discardableResult
    func adopt(_ stored: StoredSession, sessionID: String, goneReason: DisconnectReason) -> Session? {
        let now = wallClockMillis()
        guard var record = stored.record else {
            if let local = registry.session(sessionID) { closeSession(local, reason: goneReason) }
            return nil
        }
        record.pruneRetiredTokens(now: now)

        while true {
            guard let local = registry.session(sessionID) else {
                let fresh = Session(record: record, version: stored.version)
                let inserted = registry.indexes.withLock { ix -> Bool in
                    guard ix.sessions[sessionID] == nil else { return false }
                    ix.sessions[sessionID] = fresh
                    SessionRegistry.index(record, into: &ix, now: now)
                    return true
                }
                if inserted { return fresh }
                continue
            }
            enum Step { case stale, replaced, update(removedDevices: [String]) }
            let step: Step = local.state.withLock { s in
                if s.closed { return .replaced }
                if stored.version < s.version { return .stale }
                if !s.record.isSameIncarnation(as: record) { return .replaced }
                return .update(removedDevices: s.record.devices.keys.filter { record.devices[$0] == nil })
            }
            switch step {
            case .stale:
                return local
            case .replaced:
                closeSession(local, reason: .replacedByNewPairStart)
                continue
            case .update(let removed):
                for deviceID in removed { revokeDeviceLocally(local, deviceID: deviceID, now: now) }
                let applied = local.state.withLock { s -> Bool in
                    guard !s.closed, stored.version >= s.version else { return false }
                    let previous = s.record
                    var merged = record
                    merged.touch(previous.lastActivityAtMillis)
                    s.record = merged
                    s.version = stored.version
                    registry.indexes.withLock { ix in
                        SessionRegistry.unindex(previous, from: &ix)
                        SessionRegistry.index(merged, into: &ix, now: now)
                    }
                    return true
                }
                if applied && !removed.isEmpty { updateSubscription(local) }
                return local
            }
        }
    }

    // MARK: Startup

    /// Loads every stored session. A store that cannot be read at start is retried in the
    /// background with backoff and jitter (DECISIONS 6) instead of leaving the node empty.
    func restoreFromStore() async {
        do {
            try await restoreOnce()
        } catch {
            logger.error("state store unavailable at start; retrying", metadata: ["error": "\(error)"])
            Task { [weak self] in
                var delay: Int64 = 100
                while let relay = self {
                    try? await Task.sleep(for: .milliseconds(delay + Int64.random(in: 0...(delay / 2))))
                    do {
                        try await relay.restoreOnce()
                        relay.logger.notice("state store reachable; sessions restored")
                        return
                    } catch {
                        delay = min(delay * 2, 5000)
                    }
                }
            }
        }
    }

    private func restoreOnce() async throws {
        let records = try await store.loadAll()
        for (record, version) in records {
            adopt(StoredSession(record: record, version: version), sessionID: record.sessionID, goneReason: .removedFromPersistence)
        }
        if !records.isEmpty { logger.info("restored sessions from store", metadata: ["count": "\(records.count)"]) }
    }
}

/// Runs one reload at a time; a caller is satisfied only by a reload that started after it asked.
actor ReloadGate {
    private var started = 0
    private var finished = 0
    private var running = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var lastError: (any Error)?

    func run(_ body: @Sendable () async throws -> Void) async throws {
        let needed = started + 1
        while finished < needed {
            if running {
                await withCheckedContinuation { waiters.append($0) }
                continue
            }
            running = true
            started += 1
            let number = started
            do {
                try await body()
                lastError = nil
            } catch {
                lastError = error
            }
            finished = number
            running = false
            let woken = waiters
            waiters = []
            for waiter in woken { waiter.resume() }
        }
        if let lastError { throw lastError }
    }
}

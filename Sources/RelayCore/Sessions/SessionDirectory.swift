// This node's copies of the sessions, kept in step with the store: lookups, writes, adoption, reloads.

import Logging
import RelayProtocol
import Synchronization

/// The sessions this node holds and how they follow the store, which is the truth (DECISIONS 3):
/// every change to a session's durable record is a read-modify-write with compare-and-save, and
/// what was stored is then adopted by the local copy. A node never writes its own copy back over
/// a newer record, and a token issued, rotated or revoked anywhere is what every node checks
/// against.
final class SessionDirectory: NodePart, Sendable {
    let context: NodeContext
    let router: Router
    let presence: ClusterPresence
    let registry = SessionRegistry()
    private let reloadGate = ReloadGate()
    private let tokenReloadFallback = Mutex<Int64?>(nil)
    /// Sessions with a phone socket here whose device's grant has an end (extension 10): what
    /// ``closeExpiredGrants(now:)`` looks at, so the check never walks every session.
    private let expiringGrants = Mutex<Set<String>>([])

    init(context: NodeContext, router: Router, presence: ClusterPresence) {
        self.context = context
        self.router = router
        self.presence = presence
    }

    func session(_ id: String) -> Session? { registry.session(id) }

    var allSessions: [Session] { registry.allSessions }

    /// Every socket this node holds.
    func localConnections() -> [any RelayConnection] {
        registry.allSessions.flatMap { session in
            session.state.withLock { s in (s.desktop.map { [$0] } ?? []) + s.mobileConnections }
        }
    }

    // MARK: Tokens

    /// Who the token with `digest` belongs to: this node's index first, then the cluster's. Throws
    /// when the store cannot answer: an unknown token is not a wrong one during an outage, and a
    /// client told `session_expired` would pair again.
    func owner(ofToken digest: TokenDigest) async throws -> TokenOwner? {
        if let owner = registry.owner(ofToken: digest, now: context.now) { return owner }
        guard context.store.isShared else { return nil }
        return try await storedOwner(ofToken: digest)
    }

    /// A token this node does not hold, looked up in the cluster (PROTOCOL §6.2's forced reload,
    /// made O(1)): the store's token index names the session, which is reloaded alone. A token
    /// the index does not know may still come from a node that writes no index; for that, a full
    /// reload runs at most once per `tokenReloadFallbackIntervalMillis`, so unknown tokens cannot
    /// make a node re-read every session.
    private func storedOwner(ofToken digest: TokenDigest) async throws -> TokenOwner? {
        if let sessionID = try await context.store.sessionID(forToken: digest) {
            try await reloadSession(sessionID)
            return registry.owner(ofToken: digest, now: context.now)
        }
        let now = context.now
        let interval = context.configuration.tokenReloadFallbackIntervalMillis
        let due = tokenReloadFallback.withLock { last -> Bool in
            if let last, now - last < interval { return false }
            last = now
            return true
        }
        guard due else { return nil }
        try await reloadAll()
        return registry.owner(ofToken: digest, now: context.now)
    }

    // MARK: Writes

    /// Applies `change` to the stored record (nil: absent; setting nil deletes) with
    /// compare-and-save, retrying when another node wrote in between, then adopts the result.
    /// The loaded record is adopted even when `change` rejects it, so the local copy is current.
    @discardableResult
    func updateStored<T, E: Error>(
        _ sessionID: String, goneReason: DisconnectReason = .removedFromPersistence,
        _ change: (inout SessionRecord?) throws(E) -> T
    ) async throws(StoreWriteFailure<E>) -> (value: T, session: Session?) {
        let store = context.store
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
        let now = context.now
        do {
            try await updateStored(session.id) { (record: inout SessionRecord?) throws(Never) in record?.touch(now) }
        } catch {
            logger.error("state_store_write_failed", metadata: ["session": "\(Identifiers.redacted(session.id))", "error": "\(error)"])
        }
    }

    /// Deletes the stored record; failures are logged.
    func deleteFromStore(sessionID: String, version: UInt64) async {
        do {
            try await context.store.delete(sessionID: sessionID, version: version)
        } catch {
            logger.error("state_store_delete_failed", metadata: ["session": "\(Identifiers.redacted(sessionID))", "error": "\(error)"])
        }
    }

    // MARK: Reads

    /// Reloads one session from the store into this node (PROTOCOL §6.2, DECISIONS 3).
    @discardableResult
    func reloadSession(_ sessionID: String, goneReason: DisconnectReason = .removedFromPersistence) async throws -> Session? {
        let stored = try await context.store.load(sessionID: sessionID)
        return adopt(stored, sessionID: sessionID, goneReason: goneReason)
    }

    /// Reloads every stored session; concurrent callers share one reload that started after they
    /// asked, so a token minted a moment ago on another node is found.
    func reloadAll() async throws {
        try await reloadGate.run { [self] in
            let count = try await adoptEveryStoredSession()
            if count > 0 { logger.debug("sessions_reloaded", metadata: ["count": "\(count)"]) }
        }
    }

    /// Loads every stored session once (the node's start) and logs how many there were.
    func restore() async throws {
        let count = try await adoptEveryStoredSession()
        if count > 0 { logger.info("sessions_restored", metadata: ["count": "\(count)"]) }
    }

    private func adoptEveryStoredSession() async throws -> Int {
        let records = try await context.store.loadAll()
        for (record, version) in records {
            adopt(StoredSession(record: record, version: version), sessionID: record.sessionID, goneReason: .removedFromPersistence)
        }
        return records.count
    }

    /// Drops every local copy's version: after a failover the store's versions may be lower than
    /// the ones read from the old master, and must still win.
    func forgetStoredVersions() {
        for session in registry.allSessions { session.state.withLock { $0.version = 0 } }
    }

    // MARK: Adoption

    /// Makes the local copy of a session match what the store holds: inserts it, replaces the
    /// record of a live copy (keeping sockets, buckets and pending joins), closes the sockets of
    /// devices that are gone, ends a replaced incarnation, or closes the copy when the record is
    /// gone. An older stored version than the local one is ignored.
    @discardableResult
    func adopt(_ stored: StoredSession, sessionID: String, goneReason: DisconnectReason) -> Session? {
        let now = context.now
        guard var record = stored.record else {
            if let local = registry.session(sessionID) { closeSession(local, reason: goneReason) }
            return nil
        }
        record.pruneRetiredTokens(now: now)

        while true {
            guard let local = registry.session(sessionID) else {
                let fresh = Session(record: record, version: stored.version)
                if registry.insert(fresh, record: record, now: now) { return fresh }
                continue
            }
            enum Step { case stale, replaced, update(removedDevices: [String]) }
            let step: Step = local.state.withLock { s in
                if s.closed { return .replaced }
                if stored.version < s.version { return .stale }
                if !s.record.isSameIncarnation(as: record) { return .replaced }
                return .update(removedDevices: s.record.devices.keys.filter { record.devices[$0] == nil })
            }
            // Grants the desktop changed (extension 10): the device's sockets here hear the new one.
            var regranted: [(sockets: [any RelayConnection], grant: DeviceGrant)] = []
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
                    registry.reindex(from: previous, to: merged, now: now)
                    for (deviceID, device) in merged.devices {
                        guard let grant = device.grant, previous.devices[deviceID]?.grant != grant else { continue }
                        let sockets = s.mobiles.values.filter { $0.deviceID == deviceID }.map(\.connection)
                        if !sockets.isEmpty { regranted.append((sockets, grant)) }
                    }
                    return true
                }
                if applied && !removed.isEmpty { router.updateSubscription(local) }
                for change in regranted {
                    let frame = ServerMessage.scope(sessionID: local.id, grant: change.grant)
                    for socket in change.sockets { router.deliver(frame, to: socket) }
                    if change.grant.expiresAtMillis != nil { watchGrants(of: local) }
                }
                return local
            }
        }
    }

    // MARK: Closing

    /// Closes a local session (PROTOCOL §5): out of memory and the indexes, its pending join failed,
    /// its local sockets sent `disconnect` with `reason`. Returns the version to delete with, or nil
    /// if it was already closed.
    @discardableResult
    func closeSession(_ session: Session, reason: DisconnectReason) -> UInt64? {
        let closed: (sockets: [any RelayConnection], pending: PendingJoin?, version: UInt64, claims: [(slot: PresenceSlot, holderID: String)])? = session.state.withLock { s in
            guard !s.closed else { return nil }
            let claims = s.localClaims
            s.closed = true
            let sockets = (s.desktop.map { [$0] } ?? []) + s.mobileConnections
            s.desktop = nil
            s.mobiles = [:]
            s.mobileConnections = []
            let pending = s.pendingJoin
            s.pendingJoin = nil
            let dropped = s.history.clear()
            context.stats.historyChanged(frames: dropped.frames, bytes: dropped.bytes)
            s.version += 1
            registry.remove(session, record: s.record)
            return (sockets, pending, s.version, claims)
        }
        guard let closed else { return nil }
        if presence.isClustered && !closed.claims.isEmpty {
            // The sockets are gone: their claims must not keep a new incarnation "active".
            let presence = self.presence, sessionID = session.id, claims = closed.claims
            context.work.submit {
                for claim in claims { await presence.release(claim.slot, of: sessionID, holderID: claim.holderID) }
            }
        }
        closed.pending?.resolve(.desktopGone)
        for socket in closed.sockets {
            context.stats.disconnect(reason)
            socket.terminate(reason)
        }
        router.unsubscribe(session.id)
        logger.info("session_closed", metadata: ["session": "\(Identifiers.redacted(session.id))", "reason": "\(reason.rawValue)"])
        return closed.version
    }

    // MARK: Grants (extension 10)

    /// Has ``closeExpiredGrants(now:)`` look at `session`: a phone socket here has a grant with an end.
    func watchGrants(of session: Session) {
        expiringGrants.withLock { _ = $0.insert(session.id) }
    }

    /// Closes, with `device_expired`, the sockets here of every device whose grant has ended:
    /// within one check interval of `grantExpiresAt` on every node, since each node checks the
    /// phones it holds. Returns the number of sockets closed.
    @discardableResult
    func closeExpiredGrants(now: Int64) -> Int {
        var closed = 0
        for sessionID in expiringGrants.withLock({ $0 }) {
            guard let session = registry.session(sessionID) else {
                expiringGrants.withLock { _ = $0.remove(sessionID) }
                continue
            }
            let (expired, pending): ([String], Bool) = session.state.withLock { s in
                guard !s.closed else { return ([], false) }
                var expired: Set<String> = []
                var pending = false
                for socket in s.mobiles.values {
                    guard let end = s.record.devices[socket.deviceID]?.grant?.expiresAtMillis else { continue }
                    if now >= end { expired.insert(socket.deviceID) } else { pending = true }
                }
                return (Array(expired), pending)
            }
            if !pending { expiringGrants.withLock { _ = $0.remove(sessionID) } }
            for deviceID in expired {
                let before = session.state.withLock { s in s.mobiles.values.filter { $0.deviceID == deviceID }.count }
                dropDeviceLocally(session, deviceID: deviceID, now: now, reason: .deviceExpired)
                closed += before
            }
        }
        if closed > 0 { context.stats.grantExpired(sockets: closed) }
        return closed
    }

    /// Removes a device from the local copy: its tokens, buckets and socket; tells the local desktop
    /// the new count (in a cluster, once the device's claims here are released). Returns the local
    /// count, or nil if the device was unknown here.
    @discardableResult
    func revokeDeviceLocally(_ session: Session, deviceID: String, now: Int64) -> Int? {
        dropDeviceLocally(session, deviceID: deviceID, now: now, reason: .deviceRevoked)
    }

    /// Closes a device's sockets here with `reason` and tells the local desktop the new count;
    /// with `.deviceRevoked` the device is forgotten too (its tokens and buckets). Returns the
    /// local count, or nil if the device was unknown here.
    @discardableResult
    func dropDeviceLocally(_ session: Session, deviceID: String, now: Int64, reason: DisconnectReason) -> Int? {
        let forget = reason == .deviceRevoked
        let result: (sockets: [any RelayConnection], count: Int)? = session.state.withLock { s in
            guard s.record.devices[deviceID] != nil else { return nil }
            if forget {
                let tokens = s.removeDevice(deviceID)
                registry.removeDeviceTokens(tokens, sessionID: session.id)
            }
            s.touch(now)
            let sockets = s.mobiles.values.filter { $0.deviceID == deviceID }.map(\.connection)
            for socket in sockets { s.removeMobile(connectionID: socket.connectionID) }
            return (sockets, s.mobiles.count)
        }
        guard let result else { return nil }
        if !forget && result.sockets.isEmpty { return result.count }
        for socket in result.sockets {
            context.stats.disconnect(reason)
            socket.terminate(reason)
        }
        if presence.isClustered {
            let presence = self.presence, router = self.router, sessionID = session.id
            let holders = result.sockets.map(\.connectionID)
            context.work.submit {
                var live: SessionPresence?
                for holder in holders { live = await presence.release(.device(deviceID), of: sessionID, holderID: holder) }
                if live == nil { live = await presence.read(sessionID) }
                let count = session.state.withLock { $0.connectedDeviceCount(live: live, excluding: deviceID) }
                router.announceDeviceCount(session, count: count, publishing: false)
            }
        } else {
            router.announceDeviceCount(session, count: result.count, publishing: false)
        }
        return result.count
    }
}

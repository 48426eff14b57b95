// The periodic sweep: expired sessions, expired grace tokens, idle rate windows.

import Logging
import Synchronization
import RelayProtocol

/// The periodic sweep (PROTOCOL §5, DECISIONS 5) over this node's sessions and budgets.
final class Sweeper: NodePart, Sendable {
    let context: NodeContext
    let directory: SessionDirectory
    let router: Router
    /// The per-IP budgets whose idle windows a sweep drops.
    let limiters: [IPRateLimiter]

    init(context: NodeContext, directory: SessionDirectory, router: Router, limiters: [IPRateLimiter]) {
        self.context = context
        self.directory = directory
        self.router = router
        self.limiters = limiters
    }

    /// One sweep (PROTOCOL §5, DECISIONS 5): expires sessions that hold no local socket — idle or
    /// past retention when nobody is trusted, past the trusted-session TTL otherwise — and prunes
    /// expired grace tokens and rate buckets. A node alone ends such sessions everywhere; a
    /// cluster node only forgets its own copy.
    func sweep(now: Int64) async {
        for session in directory.allSessions {
            let verdict: (reason: DisconnectReason?, pruned: Bool) = session.state.withLock { s in
                guard !s.closed else { return (nil, false) }
                let pruned = s.record.pruneRetiredTokens(now: now)
                guard !s.hasLocalSockets else { return (nil, pruned) }
                let idle = now - s.record.lastActivityAtMillis
                if s.record.devices.isEmpty {
                    if idle >= Int64(max(s.record.idleTimeoutSeconds, 60)) * 1000 { return (.idleTimeout, pruned) }
                    if now - s.record.createdAtMillis >= configuration.sessionRetentionMillis { return (.retentionExpired, pruned) }
                } else if idle >= configuration.trustedSessionTTLMillis {
                    return (.idleTimeout, pruned)
                }
                return (nil, pruned)
            }
            if let reason = verdict.reason {
                guard context.bus == nil else {
                    // DECISIONS 5: in a cluster, "no socket here" says nothing about the other
                    // nodes. Drop only this node's copy; the shared store's TTL ends the session.
                    directory.closeSession(session, reason: reason)
                    continue
                }
                if let version = directory.closeSession(session, reason: reason) {
                    let expired = ServerMessage.disconnect(.sessionExpired)
                    router.publish(.desktop, sessionID: session.id, payload: expired)
                    router.publish(.mobile, sessionID: session.id, payload: expired)
                    await directory.deleteFromStore(sessionID: session.id, version: version)
                }
            } else if verdict.pruned {
                await pruneStoredTokens(session, now: now)
            }
        }
        if context.store.isShared { await keepAliveHeldSessions() }
        _ = directory.registry.pruneExpiredTokens(now: now)
        for limiter in limiters { limiter.prune(now: now) }
    }

    private func pruneStoredTokens(_ session: Session, now: Int64) async {
        do {
            try await directory.updateStored(session.id) { (stored: inout SessionRecord?) throws(Never) in
                stored?.pruneRetiredTokens(now: now)
            }
        } catch {
            logger.warning("state_store_write_failed", metadata: ["session": "\(Identifiers.redacted(session.id))", "error": "\(error)"])
        }
    }

    /// Extends the stored expiry of every session this node holds a socket of (DECISIONS 5): a
    /// session in use never expires from the shared store.
    private func keepAliveHeldSessions() async {
        let held = directory.allSessions.compactMap { session in
            session.state.withLock { s in !s.closed && s.hasLocalSockets ? s.record : nil }
        }
        guard !held.isEmpty else { return }
        do {
            try await context.store.keepAlive(held)
        } catch {
            logger.warning("state_store_keep_alive_failed", metadata: ["sessions": "\(held.count)", "error": "\(error)"])
        }
    }
}

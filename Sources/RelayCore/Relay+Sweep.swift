import Logging
import Synchronization
import RelayProtocol

extension Relay {
    /// One sweep (PROTOCOL §5, DECISIONS 5): expires sessions that hold no local socket — idle or
    /// past retention when nobody is trusted, past the trusted-session TTL otherwise — and prunes
    /// expired grace tokens and rate buckets. A node alone ends such sessions everywhere; a
    /// cluster node only forgets its own copy.
    public func sweep(now: Int64 = wallClockMillis()) async {
        for session in registry.allSessions {
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
                guard bus == nil else {
                    // DECISIONS 5: in a cluster, "no socket here" says nothing about the other
                    // nodes. Drop only this node's copy; the shared store's TTL ends the session.
                    closeSession(session, reason: reason)
                    continue
                }
                if let version = closeSession(session, reason: reason) {
                    let expired = ServerMessage.disconnect(.sessionExpired)
                    publish(.desktop, sessionID: session.id, payload: expired)
                    publish(.mobile, sessionID: session.id, payload: expired)
                    await deleteFromStore(sessionID: session.id, version: version)
                }
            } else if verdict.pruned {
                await pruneStoredTokens(session, now: now)
            }
        }
        if store.isShared { await keepAliveHeldSessions() }
        _ = registry.pruneExpiredTokens(now: now)
        ipLimiter.prune(now: now)
        authFailureLimiter.prune(now: now)
    }

    private func pruneStoredTokens(_ session: Session, now: Int64) async {
        do {
            try await updateStored(session.id) { (stored: inout SessionRecord?) throws(Never) in
                stored?.pruneRetiredTokens(now: now)
            }
        } catch {
            logger.warning("state store write failed", metadata: ["session": "\(Identifiers.redacted(session.id))", "error": "\(error)"])
        }
    }

    /// Extends the stored expiry of every session this node holds a socket of (DECISIONS 5): a
    /// session in use never expires from the shared store.
    private func keepAliveHeldSessions() async {
        let held = registry.allSessions.compactMap { session in
            session.state.withLock { s in !s.closed && s.hasLocalSockets ? s.record : nil }
        }
        guard !held.isEmpty else { return }
        do {
            try await store.keepAlive(held)
        } catch {
            logger.warning("state store keep-alive failed", metadata: ["sessions": "\(held.count)", "error": "\(error)"])
        }
    }

    /// Sweeps every `intervalMillis` until the task is cancelled.
    public func runSweeper(intervalMillis: Int64) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: .milliseconds(intervalMillis))
            } catch {
                return
            }
            await sweep()
        }
    }
}

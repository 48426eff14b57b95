// Socket admission and authentication: who a token is, whether there is room, and the role's checks.

import Logging
import RelayProtocol
import Synchronization
import Tracing

/// Socket admission and authentication (PROTOCOL §4.2): the token lookup, the node-wide socket
/// cap, the per-IP budget for wrong credentials, and each role's checks, ending with the socket
/// registered on its session and `auth_ok` queued as its first frame.
final class SocketAdmission: NodePart, Sendable {
    let context: NodeContext
    let directory: SessionDirectory
    let router: Router
    let pairing: Pairing
    let presence: ClusterPresence
    /// The per-client-IP budget for wrong credentials (`MAX_WS_AUTH_FAILURES_PER_MINUTE`).
    let authFailureLimiter = IPRateLimiter()
    let validationLimits: MobileValidationLimits
    /// Extension 11: what answers a phone's `relay.resume`.
    let replay: HistoryReplay

    init(context: NodeContext, directory: SessionDirectory, router: Router, pairing: Pairing, presence: ClusterPresence) {
        self.context = context
        self.directory = directory
        self.router = router
        self.pairing = pairing
        self.presence = presence
        self.validationLimits = MobileValidationLimits(
            maxCommandTextBytes: context.configuration.maxRemoteCommandTextBytes, endToEnd: context.configuration.endToEnd)
        self.replay = HistoryReplay(context: context)
    }

    private var store: any StateStore { context.store }

    /// Authenticates a socket with the token of its first frame, in the contract's check order:
    /// token, admission cap, then the role's own checks. On success `auth_ok` is the first frame
    /// queued on `connection`, before any other traffic can reach it.
    func authenticate(token: String, peer: SocketPeer, connection: any RelayConnection) async -> AuthOutcome {
        // A client IP that keeps presenting wrong credentials is refused before any lookup.
        let limit = configuration.maxWSAuthFailuresPerMinute
        if authFailureLimiter.isExhausted(ip: peer.remoteIP, limit: limit, now: context.now) {
            recordAuthFailure(.authRateLimited, peer: peer)
            return .rejected(.authRateLimited)
        }
        // The span's parent is known once the token names a session (see `traceParent`).
        let trace = PendingSpan("relay.auth", kind: .server, tracer: context.tracer)
        let outcome = await authenticateUnlogged(token: token, peer: peer, connection: connection, trace: trace)
        switch outcome {
        case .rejected(let reason):
            if reason.spendsFailureBudget { _ = authFailureLimiter.consume(ip: peer.remoteIP, limit: limit, now: context.now) }
            recordAuthFailure(reason, peer: peer)
            trace.start(parent: peer.traceparent).end(refusedWith: reason.rawValue)
        case .authenticated:
            stats.authSuccess()
            trace.span.end()
        }
        return outcome
    }

    /// Counts and logs an auth failure in the shape operators grep for (PROTOCOL §7).
    func recordAuthFailure(_ reason: AuthFailureReason, peer: SocketPeer) {
        stats.authFailure(reason)
        let extra = reason == .relayOverCapacity
            ? "active=\(stats.activeWebSockets.load(ordering: .relaxed)) limit=\(configuration.maxActiveWebSockets) " : ""
        logger.warning("ws_auth_failure reason=\(reason.rawValue) \(extra)remote_ip=\(peer.remoteIP) user_agent=\(peer.userAgent ?? "-")")
    }

    /// The trace a socket's auth joins: the upgrade's own `traceparent`, else, for a desktop whose
    /// session has not paired a phone yet, the trace of its `/pair/start`.
    private func traceParent(_ session: Session, role: String, peer: SocketPeer, trace: PendingSpan) {
        guard context.tracer != nil else { return }
        let paired = role == "desktop" ? session.state.withLock { s in s.record.joinTokenUsedAtMillis == nil ? s.record.pairingTraceparent : nil } : nil
        let span = trace.start(parent: peer.traceparent ?? paired)
        span.set("relay.role", role)
        span.set("relay.session", Identifiers.redacted(session.id))
    }

    private func authenticateUnlogged(
        token: String, peer: SocketPeer, connection: any RelayConnection, trace: PendingSpan
    ) async -> AuthOutcome {
        guard Identifiers.isOpaqueToken(token, minLength: 22) else { return .rejected(.invalidAuthPayload) }
        // The token is digested once; every lookup and comparison from here on uses the digest.
        let digest = TokenDigest(of: token)
        let owner: TokenOwner?
        do {
            owner = try await directory.owner(ofToken: digest)
        } catch {
            // The credentials may be fine: the client is told to retry (1011), not that its
            // session is gone.
            logger.warning("state_store_read_failed; token not looked up", metadata: ["error": "\(error)"])
            return .rejected(.tokenRotationPersistFailed)
        }
        guard let owner else { return .rejected(.tokenNotFound) }
        switch owner {
        case .desktop(let session):
            traceParent(session, role: "desktop", peer: peer, trace: trace)
            return await authenticateDesktop(session, token: digest, connection: connection)
        case .device(let session, let deviceID):
            traceParent(session, role: "mobile", peer: peer, trace: trace)
            trace.span.set("relay.device", deviceID)
            return await authenticateMobile(session, deviceID: deviceID, token: digest, peer: peer, connection: connection)
        }
    }

    /// Admission (PROTOCOL §4.2 step 4): a reconnection that does not grow the count always passes.
    private func admit(replacing: Bool) -> Bool {
        if replacing {
            stats.activeWebSockets.add(1, ordering: .relaxed)
            return true
        }
        return stats.activeWebSockets.incrementIfBelow(configuration.maxActiveWebSockets)
    }

    func releaseAdmission() { stats.activeWebSockets.subtract(1, ordering: .relaxed) }

    // MARK: Desktop

    private func authenticateDesktop(_ found: Session, token: TokenDigest, connection: any RelayConnection) async -> AuthOutcome {
        // Check the token against the stored record: a stopped or replaced session never
        // authenticates again (DECISIONS 3). During a store outage the local copy decides, so held
        // sessions keep working (DECISIONS 6).
        var session = found
        if store.isShared {
            do {
                guard let current = try await directory.reloadSession(found.id) else { return .rejected(.desktopSessionMissing) }
                session = current
            } catch {
                logger.warning("state_store_read_failed; authenticating from the local copy", metadata: ["error": "\(error)"])
            }
        }
        let replacing = session.state.withLock { $0.desktop != nil }
        guard admit(replacing: replacing) else { return .rejected(.relayOverCapacity) }
        await router.subscribeAhead(session)
        // In a cluster the desktop claims its presence first: the claim answers with the devices
        // connected anywhere, which is what `auth_ok` counts.
        let live = await presence.claim(.desktop, of: session.id, holderID: connection.connectionID)
        let now = context.now
        let installed: (old: (any RelayConnection)?, mobiles: [any RelayConnection])? = session.state.withLock { s in
            guard !s.closed, s.record.desktopSessionToken.matches(token) else { return nil }
            let old = s.desktop
            s.desktop = connection
            s.remoteDesktopNode = nil
            s.touch(now)
            let count = live?.connectedDeviceCount ?? s.mobiles.count
            _ = connection.send(ServerMessage.desktopAuthOK(sessionID: session.id, connectedDeviceCount: count))
            return (old, s.mobileConnections)
        }
        guard let installed else {
            releaseAdmission()
            router.updateSubscription(session)
            if live != nil { await presence.release(.desktop, of: session.id, holderID: connection.connectionID) }
            return .rejected(.desktopSessionMissing)
        }
        if let old = installed.old {
            stats.disconnect(.desktopReconnected)
            old.terminate(.desktopReconnected)
        }
        let status = ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: true)
        for mobile in installed.mobiles { router.deliver(status, to: mobile) }
        router.publish(.mobile, sessionID: session.id, payload: status)
        router.updateSubscription(session)
        await directory.touchStored(session)
        return .authenticated(DesktopEndpoint(admission: self, session: session, connection: connection))
    }

    // MARK: Mobile

    private func authenticateMobile(
        _ session: Session, deviceID: String, token: TokenDigest, peer: SocketPeer, connection: any RelayConnection
    ) async -> AuthOutcome {
        let replacing = session.state.withLock { s in s.mobiles.values.contains { $0.deviceID == deviceID } }
        guard admit(replacing: replacing) else { return .rejected(.relayOverCapacity) }
        var admitted = true
        defer { if admitted { releaseAdmission() } }
        guard context.address.origins.allowsMobile(origin: peer.origin) else { return .rejected(.mobileOriginNotAllowed) }

        // A reconnecting device frees its own slot; the cap counts the other devices' sockets.
        let capReached = session.state.withLock { s in
            s.mobiles.values.filter { $0.deviceID != deviceID }.count >= configuration.maxDevicesPerSession
        }
        guard !capReached else { return .rejected(.deviceCapReached) }

        // In a cluster the cap counts the devices connected anywhere: the device claims its
        // presence, and the claim's answer says how many others are connected. Claimed before
        // the rotation, so a refusal here leaves the device's token as it was.
        let holderID = connection.connectionID
        var live: SessionPresence?
        if presence.isClustered {
            live = await presence.claim(.device(deviceID), of: session.id, holderID: holderID)
            if let others = live?.connectedDevices.subtracting([deviceID]), others.count >= configuration.maxDevicesPerSession {
                await presence.release(.device(deviceID), of: session.id, holderID: holderID)
                return .rejected(.deviceCapReached)
            }
        }
        var claimed = live != nil
        defer {
            if claimed {
                let presence = self.presence, sessionID = session.id
                context.work.submit { await presence.release(.device(deviceID), of: sessionID, holderID: holderID) }
            }
        }

        // Rotation is a compare-and-save on the stored record (DECISIONS 4): the token is checked
        // against what the cluster holds, so a device revoked anywhere cannot come back here, and
        // two nodes cannot both rotate one token.
        let now = context.now
        let newToken = Identifiers.deviceToken()
        let newStoredToken = context.storedToken(newToken)
        let grace = configuration.tokenRotationGraceMillis
        do {
            try await directory.updateStored(session.id) { (stored: inout SessionRecord?) throws(AuthFailureReason) in
                guard var r = stored else { throw .mobileSessionMissing }
                guard var device = r.devices[deviceID] else { throw .deviceNotRegistered }
                guard device.accepts(token, now: now) else { throw .tokenNotFound }
                // Extension 10: an expired grant's tokens no longer authenticate, on any node.
                if device.grant?.hasExpired(at: now) == true { throw .deviceExpired }
                let oldCurrent = device.currentToken
                device.pruneRetired(now: now)
                device.retiredTokens.removeAll { $0.token == oldCurrent }
                if grace > 0 { device.retiredTokens.append(RetiredToken(token: oldCurrent, expiresAtMillis: now + grace)) }
                device.currentToken = newStoredToken
                device.lastSeenAtMillis = now
                r.devices[deviceID] = device
                r.touch(now)
                stored = r
            }
        } catch {
            switch error {
            case .rejected(let reason):
                return .rejected(reason)
            case .unavailable(let cause):
                logger.error("ws_auth_failure reason=token_rotation_persist_failed session=\(Identifiers.redacted(session.id)) remote_ip=\(peer.remoteIP) user_agent=\(peer.userAgent ?? "-") error=\(cause)")
                return .rejected(.tokenRotationPersistFailed)
            }
        }

        await router.subscribeAhead(session)
        var desktopConnected = false
        if presence.isClustered {
            // The claim said where the desktop is: a node other than this one is watched from now on.
            let own = context.nodeID
            desktopConnected = session.state.withLock { s in
                if s.desktop != nil { return true }
                guard let node = live?.desktopNode, node != own else { return false }
                s.remoteDesktopNode = node
                return true
            }
        }
        // A cluster without a shared store has no presence to ask; one still mixed with reference
        // relays (which claim nothing; they need the plain layout) may hold the desktop there.
        if !desktopConnected && (!presence.isClustered || context.store.keepsTokensInClear) {
            desktopConnected = await resolveDesktopPresence(session)
        }
        let mobile = MobileEndpoint(admission: self, session: session, deviceID: deviceID, connection: connection)
        enum Registration {
            case registered(desktop: (any RelayConnection)?, count: Int)
            case rejected(AuthFailureReason)
        }
        let registration: Registration = session.state.withLock { s in
            guard !s.closed else { return .rejected(.mobileSessionMissing) }
            guard s.record.devices[deviceID] != nil else { return .rejected(.deviceNotRegistered) }
            for old in s.mobiles.values where old.deviceID == deviceID {
                s.removeMobile(connectionID: old.connection.connectionID)
                stats.disconnect(.deviceReconnected)
                old.connection.terminate(.deviceReconnected)
            }
            guard s.mobiles.count < configuration.maxDevicesPerSession else { return .rejected(.deviceCapReached) }
            s.addMobile(MobileSocket(connection: connection, deviceID: deviceID))
            let count = live?.connectedDeviceCount ?? s.mobiles.count
            _ = connection.send(ServerMessage.mobileAuthOK(
                sessionID: session.id, deviceID: deviceID, nextDeviceSessionToken: newToken,
                connectedDeviceCount: count, desktopConnected: desktopConnected || s.desktopConnected,
                grant: s.record.devices[deviceID]?.grant))
            return .registered(desktop: s.desktop, count: count)
        }
        let registered: (desktop: (any RelayConnection)?, count: Int)
        switch registration {
        case .rejected(let reason):
            router.updateSubscription(session)
            return .rejected(reason)
        case .registered(let desktop, let count): registered = (desktop, count)
        }
        admitted = false
        claimed = false
        let count = ServerMessage.deviceCount(sessionID: session.id, connectedDeviceCount: registered.count)
        if let desktop = registered.desktop { router.deliver(count, to: desktop) }
        router.publish(.desktop, sessionID: session.id, payload: count)
        router.updateSubscription(session)
        if session.state.withLock({ $0.record.devices[deviceID]?.grant?.expiresAtMillis != nil }) { directory.watchGrants(of: session) }
        return .authenticated(mobile)
    }

    /// Whether the session's desktop is connected here or, via a probe, on another node (§4.2): for
    /// a cluster without a shared store, which has no presence to ask.
    private func resolveDesktopPresence(_ session: Session) async -> Bool {
        let local = session.state.withLock { s -> Bool in
            if s.desktop != nil { return true }
            s.remoteDesktopNode = nil
            return false
        }
        if local { return true }
        guard context.bus != nil else { return false }
        router.publishPresenceProbe(session.id)
        for _ in 0..<10 {
            try? await Task.sleep(for: .milliseconds(15))
            if session.state.withLock({ $0.desktopConnected }) { return true }
        }
        return false
    }
}

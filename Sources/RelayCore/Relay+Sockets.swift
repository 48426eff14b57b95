import Synchronization
import Logging
import RelayProtocol

/// What the transport does with an authenticated socket's inbound traffic.
public protocol SocketEndpoint: Sendable {
    /// One inbound text frame that passed the size and per-socket rate checks.
    func receive(text: [UInt8])
    /// An inbound Ping or Pong: counts as session activity.
    func receivedControlFrame()
    /// The socket is gone; called exactly once.
    func closed()
}

/// The result of the `relay.auth` handshake (PROTOCOL §4.2).
public enum AuthOutcome: Sendable {
    /// `auth_ok` is already queued as the socket's first frame.
    case authenticated(any SocketEndpoint)
    case rejected(AuthFailureReason)
}

/// The facts about a connecting socket that auth and its logs need.
public struct SocketPeer: Sendable {
    public var remoteIP: String
    public var origin: String?
    public var userAgent: String?
    public init(remoteIP: String, origin: String?, userAgent: String?) {
        self.remoteIP = remoteIP
        self.origin = origin
        self.userAgent = userAgent
    }
}

extension Relay {
    /// Authenticates a socket with the token of its first frame, in the contract's check order:
    /// token, admission cap, then the role's own checks. On success `auth_ok` is the first frame
    /// queued on `connection`, before any other traffic can reach it.
    public func authenticate(token: String, peer: SocketPeer, connection: any RelayConnection) async -> AuthOutcome {
        // A client IP that keeps presenting wrong credentials is refused before any lookup.
        let limit = configuration.maxWSAuthFailuresPerMinute
        if authFailureLimiter.isExhausted(ip: peer.remoteIP, limit: limit, now: wallClockMillis()) {
            recordAuthFailure(.authRateLimited, peer: peer)
            return .rejected(.authRateLimited)
        }
        let outcome = await authenticateUnlogged(token: token, peer: peer, connection: connection)
        switch outcome {
        case .rejected(let reason):
            if reason.spendsFailureBudget { _ = authFailureLimiter.consume(ip: peer.remoteIP, limit: limit, now: wallClockMillis()) }
            recordAuthFailure(reason, peer: peer)
        case .authenticated: stats.authSuccess()
        }
        return outcome
    }

    /// Counts and logs an auth failure in the shape operators grep for (PROTOCOL §7).
    public func recordAuthFailure(_ reason: AuthFailureReason, peer: SocketPeer) {
        stats.authFailure(reason)
        let extra = reason == .relayOverCapacity
            ? "active=\(stats.activeWebSockets.load(ordering: .relaxed)) limit=\(configuration.maxActiveWebSockets) " : ""
        logger.warning("ws_auth_failure reason=\(reason.rawValue) \(extra)remote_ip=\(peer.remoteIP) user_agent=\(peer.userAgent ?? "-")")
    }

    private func authenticateUnlogged(token: String, peer: SocketPeer, connection: any RelayConnection) async -> AuthOutcome {
        guard Identifiers.isOpaqueToken(token, minLength: 22) else { return .rejected(.invalidAuthPayload) }
        var owner = registry.owner(ofToken: token, now: wallClockMillis())
        if owner == nil, store.isShared {
            owner = await storedOwner(ofToken: token)
        }
        guard let owner else { return .rejected(.tokenNotFound) }
        switch owner {
        case .desktop(let session):
            return await authenticateDesktop(session, token: token, connection: connection)
        case .device(let session, let deviceID):
            return await authenticateMobile(session, deviceID: deviceID, token: token, peer: peer, connection: connection)
        }
    }

    /// A token this node does not hold, looked up in the cluster (PROTOCOL §6.2's forced reload,
    /// made O(1)): the store's token index names the session, which is reloaded alone. A token
    /// the index does not know may still come from a node that writes no index; for that, a full
    /// reload runs at most once per `tokenReloadFallbackIntervalMillis`, so unknown tokens cannot
    /// make a node re-read every session.
    private func storedOwner(ofToken token: String) async -> TokenOwner? {
        do {
            if let sessionID = try await store.sessionID(forToken: token) {
                try await reloadSession(sessionID)
                return registry.owner(ofToken: token, now: wallClockMillis())
            }
            let now = wallClockMillis()
            let due = tokenReloadFallback.withLock { last -> Bool in
                if let last, now - last < configuration.tokenReloadFallbackIntervalMillis { return false }
                last = now
                return true
            }
            guard due else { return nil }
            try await reloadAll()
            return registry.owner(ofToken: token, now: wallClockMillis())
        } catch {
            logger.warning("state store read failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Admission (PROTOCOL §4.2 step 4): a reconnection that does not grow the count always passes.
    private func admit(replacing: Bool) -> Bool {
        if replacing {
            stats.activeWebSockets.add(1, ordering: .relaxed)
            return true
        }
        var current = stats.activeWebSockets.load(ordering: .relaxed)
        while current < configuration.maxActiveWebSockets {
            let (exchanged, original) = stats.activeWebSockets.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func releaseAdmission() { stats.activeWebSockets.subtract(1, ordering: .relaxed) }

    // MARK: Desktop

    private func authenticateDesktop(_ found: Session, token: String, connection: any RelayConnection) async -> AuthOutcome {
        // Check the token against the stored record: a stopped or replaced session never
        // authenticates again (DECISIONS 3). During a store outage the local copy decides, so held
        // sessions keep working (DECISIONS 6).
        var session = found
        if store.isShared {
            do {
                guard let current = try await reloadSession(found.id) else { return .rejected(.desktopSessionMissing) }
                session = current
            } catch {
                logger.warning("state store read failed; authenticating from the local copy", metadata: ["error": "\(error)"])
            }
        }
        let replacing = session.state.withLock { $0.desktop != nil }
        guard admit(replacing: replacing) else { return .rejected(.relayOverCapacity) }
        await subscribeAhead(session)
        let now = wallClockMillis()
        let installed: (old: (any RelayConnection)?, mobiles: [any RelayConnection])? = session.state.withLock { s in
            guard !s.closed, Identifiers.constantTimeEqual(s.record.desktopSessionToken, token) else { return nil }
            let old = s.desktop
            s.desktop = connection
            s.touch(now)
            _ = connection.send(ServerMessage.desktopAuthOK(sessionID: session.id, connectedDeviceCount: s.mobiles.count))
            return (old, s.mobileConnections)
        }
        guard let installed else {
            releaseAdmission()
            updateSubscription(session)
            return .rejected(.desktopSessionMissing)
        }
        if let old = installed.old {
            stats.disconnect(.desktopReconnected)
            old.terminate(.desktopReconnected)
        }
        let status = ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: true)
        for mobile in installed.mobiles { deliver(status, to: mobile) }
        publish(.mobile, sessionID: session.id, payload: status)
        updateSubscription(session)
        await touchStored(session)
        return .authenticated(DesktopEndpoint(relay: self, session: session, connection: connection))
    }

    // MARK: Mobile

    private func authenticateMobile(
        _ session: Session, deviceID: String, token: String, peer: SocketPeer, connection: any RelayConnection
    ) async -> AuthOutcome {
        let replacing = session.state.withLock { s in s.mobiles.values.contains { $0.deviceID == deviceID } }
        guard admit(replacing: replacing) else { return .rejected(.relayOverCapacity) }
        var admitted = true
        defer { if admitted { releaseAdmission() } }
        guard configuration.origins.allowsMobile(origin: peer.origin) else { return .rejected(.mobileOriginNotAllowed) }

        // A reconnecting device frees its own slot; the cap counts the other devices' sockets.
        let capReached = session.state.withLock { s in
            s.mobiles.values.filter { $0.deviceID != deviceID }.count >= configuration.maxDevicesPerSession
        }
        guard !capReached else { return .rejected(.deviceCapReached) }

        // Rotation is a compare-and-save on the stored record (DECISIONS 4): the token is checked
        // against what the cluster holds, so a device revoked anywhere cannot come back here, and
        // two nodes cannot both rotate one token.
        let now = wallClockMillis()
        let newToken = Identifiers.deviceToken()
        let grace = configuration.tokenRotationGraceMillis
        do {
            try await updateStored(session.id) { (stored: inout SessionRecord?) throws(AuthFailureReason) in
                guard var r = stored else { throw .mobileSessionMissing }
                guard var device = r.devices[deviceID] else { throw .deviceNotRegistered }
                guard device.accepts(token, now: now) else { throw .tokenNotFound }
                let oldCurrent = device.currentToken
                device.pruneRetired(now: now)
                device.retiredTokens.removeAll { $0.token == oldCurrent }
                if grace > 0 { device.retiredTokens.append(RetiredToken(token: oldCurrent, expiresAtMillis: now + grace)) }
                device.currentToken = newToken
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

        await subscribeAhead(session)
        let desktopConnected = await resolveDesktopPresence(session)
        let mobile = MobileEndpoint(relay: self, session: session, deviceID: deviceID, connection: connection)
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
            _ = connection.send(ServerMessage.mobileAuthOK(
                sessionID: session.id, deviceID: deviceID, nextDeviceSessionToken: newToken,
                connectedDeviceCount: s.mobiles.count, desktopConnected: desktopConnected || s.desktopConnected))
            return .registered(desktop: s.desktop, count: s.mobiles.count)
        }
        let registered: (desktop: (any RelayConnection)?, count: Int)
        switch registration {
        case .rejected(let reason):
            updateSubscription(session)
            return .rejected(reason)
        case .registered(let desktop, let count): registered = (desktop, count)
        }
        admitted = false
        let count = ServerMessage.deviceCount(sessionID: session.id, connectedDeviceCount: registered.count)
        if let desktop = registered.desktop { deliver(count, to: desktop) }
        publish(.desktop, sessionID: session.id, payload: count)
        updateSubscription(session)
        return .authenticated(mobile)
    }

    /// Whether the session's desktop is connected here or, via a probe, on another node (§4.2).
    private func resolveDesktopPresence(_ session: Session) async -> Bool {
        let local = session.state.withLock { s -> Bool in
            if s.desktop != nil { return true }
            s.remoteDesktopPresent = false
            return false
        }
        if local { return true }
        guard bus != nil else { return false }
        publishPresenceProbe(session.id)
        for _ in 0..<10 {
            try? await Task.sleep(for: .milliseconds(15))
            if session.state.withLock({ $0.desktopConnected }) { return true }
        }
        return false
    }
}

// MARK: - Per-socket endpoints: the per-message path

/// An authenticated desktop socket. Its frames go, byte-exact, to every phone of the session.
final class DesktopEndpoint: SocketEndpoint {
    let relay: Relay
    let session: Session
    let connection: any RelayConnection

    init(relay: Relay, session: Session, connection: any RelayConnection) {
        self.relay = relay
        self.session = session
        self.connection = connection
    }

    func receive(text: [UInt8]) {
        let now = wallClockMillis()
        let scan = DesktopFrameScan(text)
        let mobiles: [any RelayConnection]? = session.state.withLock { s in
            guard !s.closed, s.desktop === connection else { return nil }
            s.touch(now)
            return s.mobileConnections
        }
        guard let mobiles else {
            connection.terminate(nil)
            return
        }
        if let sid = scan.sessionID, sid != session.id { return }
        if let decision = scan.pairDecision {
            relay.handlePairDecision(decision, frame: text, session: session, from: connection)
            return
        }
        for mobile in mobiles { relay.deliver(text, to: mobile) }
        relay.publish(.mobile, sessionID: session.id, payload: text)
        relay.stats.forwarded(fromMobile: false)
    }

    func receivedControlFrame() {
        let now = wallClockMillis()
        session.state.withLock { $0.touch(now) }
    }

    func closed() {
        relay.releaseAdmission()
        let now = wallClockMillis()
        let cleared: (pending: PendingJoin?, mobiles: [any RelayConnection])? = session.state.withLock { s in
            // DECISIONS 2: only clear the slot if it still belongs to this socket.
            guard s.desktop === connection else { return nil }
            s.desktop = nil
            s.remoteDesktopPresent = false
            s.touch(now)
            let pending = s.pendingJoin
            s.pendingJoin = nil
            return (pending, s.mobileConnections)
        }
        guard let cleared else { return }
        cleared.pending?.resolve(.desktopGone)
        let status = ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: false)
        for mobile in cleared.mobiles { relay.deliver(status, to: mobile) }
        relay.publish(.mobile, sessionID: session.id, payload: status)
        relay.updateSubscription(session)
        let relay = self.relay, session = self.session
        Task { await relay.touchStored(session) }
    }
}

/// An authenticated mobile socket. Its frames are validated, budgeted, stamped and sent to the desktop.
final class MobileEndpoint: SocketEndpoint {
    let relay: Relay
    let session: Session
    let deviceID: String
    let connection: any RelayConnection

    init(relay: Relay, session: Session, deviceID: String, connection: any RelayConnection) {
        self.relay = relay
        self.session = session
        self.deviceID = deviceID
        self.connection = connection
    }

    private enum Verdict {
        case terminate
        case drop
        case reject(MobileError)
        case forward(desktop: (any RelayConnection)?)
    }

    func receive(text: [UInt8]) {
        let now = wallClockMillis()
        let sessionID = session.id
        let parsed = Result { () throws(JSONParseError) -> JSONValue in try JSONValue.parse(text) }
        let value = try? parsed.get()
        let foreign = value.map { MobileFrameValidator.hasForeignSessionID($0, sessionID: sessionID) } ?? false
        let needsDesktop = value.map(MobileFrameValidator.requiresDesktop) ?? false
        let limits = relay.validationLimits
        let kind = MobileFrameValidator.classify(parsed, sessionID: sessionID, limits: limits)
        var nameError: MobileError?
        if case .success(.command) = kind, let value {
            nameError = MobileFrameValidator.validateCommandName(value, limits: limits)
        }
        let config = relay.configuration
        let connectionID = connection.connectionID
        let deviceID = self.deviceID

        let verdict: Verdict = session.state.withLock { s in
            guard !s.closed, let socket = s.mobiles[connectionID], socket.connection === connection else { return .terminate }
            s.touch(now)
            if foreign { return .drop }
            if needsDesktop && !s.desktopConnected {
                return .reject(MobileFrameValidator.desktopOfflineError)
            }
            switch kind {
            case .failure(let error):
                return .reject(error)
            case .success(.snapshotRequest):
                var bucket = s.snapshotBuckets[deviceID] ?? RateWindow(startingAt: now)
                let allowed = bucket.consume(limit: config.maxSnapshotRequestsPerMinute, now: now)
                s.snapshotBuckets[deviceID] = bucket
                guard allowed else {
                    return .reject(MobileFrameValidator.snapshotRateLimitedError)
                }
            case .success(.command(let seq, _)):
                guard seq > socket.lastSeq else {
                    return .reject(MobileFrameValidator.replayedCommandError)
                }
                s.mobiles[connectionID]?.lastSeq = seq
                var deviceBucket = s.deviceCommandBuckets[deviceID] ?? RateWindow(startingAt: now)
                let deviceAllowed = deviceBucket.consume(limit: config.maxRemoteCommandsPerMinute, now: now)
                s.deviceCommandBuckets[deviceID] = deviceBucket
                guard deviceAllowed else {
                    return .reject(MobileFrameValidator.deviceCommandRateLimitedError)
                }
                var sessionBucket = s.sessionCommandBucket ?? RateWindow(startingAt: now)
                let sessionAllowed = sessionBucket.consume(limit: config.maxRemoteSessionCommandsPerMinute, now: now)
                s.sessionCommandBucket = sessionBucket
                guard sessionAllowed else {
                    return .reject(MobileFrameValidator.sessionCommandRateLimitedError)
                }
                if let nameError { return .reject(nameError) }
            }
            return .forward(desktop: s.desktop)
        }

        switch verdict {
        case .terminate:
            connection.terminate(nil)
        case .drop:
            return
        case .reject(let error):
            relay.stats.mobileError(error.code)
            // A relay.error that does not fit is dropped: no counter, no disconnect (§4.10).
            _ = connection.send(ServerMessage.error(error))
        case .forward(let desktop):
            guard let value else { return }
            let stamped = stampRelayIdentity(value, connectionID: connectionID, deviceID: deviceID)
            if let desktop { relay.deliver(stamped, to: desktop) }
            relay.publish(.desktop, sessionID: sessionID, payload: stamped)
            relay.stats.forwarded(fromMobile: true)
        }
    }

    func receivedControlFrame() {
        let now = wallClockMillis()
        session.state.withLock { $0.touch(now) }
    }

    func closed() {
        let now = wallClockMillis()
        let connectionID = connection.connectionID
        let removed: (desktop: (any RelayConnection)?, count: Int)? = session.state.withLock { s in
            guard let socket = s.mobiles[connectionID], socket.connection === connection else { return nil }
            s.removeMobile(connectionID: connectionID)
            s.touch(now)
            return (s.desktop, s.mobiles.count)
        }
        relay.releaseAdmission()
        guard let removed else { return }
        let count = ServerMessage.deviceCount(sessionID: session.id, connectedDeviceCount: removed.count)
        if let desktop = removed.desktop { relay.deliver(count, to: desktop, countFailure: false) }
        relay.publish(.desktop, sessionID: session.id, payload: count)
        relay.updateSubscription(session)
    }
}

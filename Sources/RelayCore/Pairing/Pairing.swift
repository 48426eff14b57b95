// Pairing: the six POST endpoints of PROTOCOL §2 and the approval a phone waits for.

import Logging
import RelayProtocol
import Synchronization
import Tracing

/// The six POST endpoints of PROTOCOL §2, each in the contract's exact check order, and the one
/// pending approval a session may have. Success returns the JSON body; failure throws the
/// ``APIError`` whose status, code and message go out.
final class Pairing: NodePart, Sendable {
    let context: NodeContext
    let directory: SessionDirectory
    let router: Router
    let presence: ClusterPresence
    /// The per-client-IP budget the six endpoints share (PROTOCOL §2.4).
    let ipLimiter = IPRateLimiter()

    init(context: NodeContext, directory: SessionDirectory, router: Router, presence: ClusterPresence) {
        self.context = context
        self.directory = directory
        self.router = router
        self.presence = presence
    }

    // MARK: Opening checks

    /// The checks every request opens with, in the contract's order: schema version, origin,
    /// the per-IP budget, then the identifiers. Returns the time the request is judged at.
    private func open(
        _ endpoint: PairingEndpoint, schemaVersion: UInt32?, meta: RequestMeta, _ identifiers: RequiredIdentifier...
    ) throws(APIError) -> Int64 {
        let now = context.now
        if endpoint.checksSchemaVersion, let schemaVersion, schemaVersion != 2 { throw .unsupportedSchemaVersion }
        guard context.address.origins.allowsRequest(origin: meta.origin) else { throw .originNotAllowed }
        guard ipLimiter.consume(ip: meta.clientIP, limit: configuration.maxPairRequestsPerMinute, now: now) else {
            throw endpoint.isManagement ? .managementRateLimited : .pairingRateLimited
        }
        for id in identifiers where !Identifiers.isOpaqueToken(id.value, minLength: id.minLength) {
            throw endpoint.invalidIdentifiers
        }
        return now
    }

    /// A join token's requested expiry: RFC 3339, in the future, and no further out than
    /// `MAX_JOIN_TOKEN_TTL_MS` (a longer one is brought in to it).
    private func joinTokenExpiry(_ text: String, endpoint: PairingEndpoint, now: Int64) throws(APIError) -> Int64 {
        guard let expiresAt = Timestamp.parseMillis(text) else { throw endpoint.invalidExpiry }
        guard expiresAt > now else { throw .expiredJoinToken }
        return min(expiresAt, now + configuration.maxJoinTokenTTLMillis)
    }

    /// The session as the store holds it now (PROTOCOL §6.2's refresh, on every request); 503 when
    /// the store cannot answer (DECISIONS 6).
    private func currentSession(_ sessionID: String) async throws(APIError) -> Session? {
        do {
            return try await directory.reloadSession(sessionID)
        } catch {
            logger.error("state_store_read_failed", metadata: ["session": "\(Identifiers.redacted(sessionID))", "error": "\(error)"])
            throw .stateStoreUnavailable
        }
    }

    /// The stored record, if `desktopToken` is its desktop's: the check every desktop write repeats
    /// against what it is about to change.
    private static func ownedRecord(_ stored: SessionRecord?, desktopToken: TokenDigest) throws(APIError) -> SessionRecord {
        guard let record = stored else { throw .sessionNotFound }
        guard record.desktopSessionToken.matches(desktopToken) else { throw .invalidDesktopSessionToken }
        return record
    }

    private func desktopSession(_ sessionID: String, token: String) async throws(APIError) -> Session {
        guard let session = try await currentSession(sessionID) else { throw .sessionNotFound }
        let digest = TokenDigest(of: token)
        let matches = session.state.withLock { $0.record.desktopSessionToken.matches(digest) }
        guard matches else { throw .invalidDesktopSessionToken }
        return session
    }

    /// `wsURL` for a session: a ws/wss URL the desktop named (path `/ws` if empty), else the default.
    func webSocketURL(requested: String?) -> String {
        if let requested, var url = ParsedURL(requested), url.scheme == "ws" || url.scheme == "wss", url.host != nil {
            if url.path.isEmpty || url.path == "/" { url.path = "/ws" }
            url.query = nil
            return url.serialized
        }
        return context.address.defaultWebSocketURL
    }

    /// ``SessionDirectory/updateStored(_:goneReason:_:)`` for the endpoints: a store failure runs
    /// `whenUnavailable`, then is a 503 (DECISIONS 6).
    @discardableResult
    private func write<T>(
        _ sessionID: String, goneReason: DisconnectReason = .removedFromPersistence,
        whenUnavailable: () -> Void = {}, _ change: (inout SessionRecord?) throws(APIError) -> T
    ) async throws(APIError) -> (value: T, session: Session?) {
        do {
            return try await directory.updateStored(sessionID, goneReason: goneReason, change)
        } catch {
            switch error {
            case .rejected(let rejection):
                throw rejection
            case .unavailable(let cause):
                logger.error("state_store_write_failed", metadata: ["session": "\(Identifiers.redacted(sessionID))", "error": "\(cause)"])
                whenUnavailable()
                throw .stateStoreUnavailable
            }
        }
    }

    static func body(_ fields: [String: JSONValue]) -> [UInt8] {
        Array(JSONValue.object(fields).serialized.utf8)
    }

    // MARK: /pair/start

    /// `POST /pair/start` (PROTOCOL §2.5): creates, or replaces, a session.
    func pairStart(_ request: PairStartRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        let span = TraceSpan("POST /pair/start", kind: .server, parent: meta.traceparent, tracer: context.tracer)
        do {
            let body = try await start(request, meta: meta, span: span)
            span.end(status: 200)
            return body
        } catch {
            span.end(refusedWith: error.code.rawValue, status: error.status)
            throw error
        }
    }

    private func start(_ request: PairStartRequest, meta: RequestMeta, span: TraceSpan) async throws(APIError) -> [UInt8] {
        stats.pairRequest(.start)
        span.set("relay.session", Identifiers.redacted(request.sessionID))
        let now = try open(
            .pairStart, schemaVersion: request.schemaVersion, meta: meta,
            .sessionID(request.sessionID), .token(request.joinToken), .token(request.desktopSessionToken))
        let joinTokenExpiry = try joinTokenExpiry(request.joinTokenExpiresAt, endpoint: .pairStart, now: now)
        let wsURL = webSocketURL(requested: request.relayWebSocketURL)
        let idle = min(max(request.idleTimeoutSeconds ?? 1800, 60), 86_400)
        let record = SessionRecord(
            sessionID: request.sessionID, joinToken: context.storedToken(request.joinToken), joinTokenExpiresAtMillis: joinTokenExpiry,
            desktopSessionToken: context.storedToken(request.desktopSessionToken), relayWebSocketURL: wsURL, idleTimeoutSeconds: idle,
            createdAtMillis: now, lastActivityAtMillis: now, pairingTraceparent: span.traceparent)

        // Steps 10–12: the conflict rule and the replacement, atomically against the stored record
        // (DECISIONS 4), so two nodes cannot both claim one sessionID. A session is in use if a
        // desktop, a phone or a pending join is connected on any node (the cluster's presence),
        // or if it has trusted devices.
        let inUseHere = directory.session(record.sessionID)?.state.withLock { s in
            !s.closed && (s.hasLocalSockets || s.pendingJoin != nil)
        } ?? false
        let inUseElsewhere: Bool
        do {
            inUseElsewhere = try await presence.readOrThrow(record.sessionID).hasActiveParticipant
        } catch {
            logger.error("state_store_read_failed", metadata: ["session": "\(Identifiers.redacted(record.sessionID))", "error": "\(error)"])
            throw .stateStoreUnavailable
        }
        let outcome = try await write(record.sessionID, goneReason: .replacedByNewPairStart) {
            (stored: inout SessionRecord?) throws(APIError) -> Bool in
            if let existing = stored {
                let active = inUseHere || inUseElsewhere || !existing.devices.isEmpty
                if active && !existing.desktopSessionToken.matches(record.desktopSessionToken.digest) {
                    throw .sessionAlreadyActive
                }
            }
            let replaced = stored != nil
            stored = record
            return replaced
        }
        if outcome.value {
            router.broadcastDisconnect(record.sessionID, reason: .replacedByNewPairStart)
            // The old session's history is not the new one's (extension 11).
            try? await context.store.deleteHistory(sessionID: record.sessionID)
        }
        router.publishSessionRefresh(record.sessionID, reason: .replacedByNewPairStart)
        stats.pairSuccess(.start)
        return Self.body(["accepted": .bool(true), "sessionID": .string(record.sessionID), "wsURL": .string(wsURL)])
    }

    // MARK: /pair/join

    /// `POST /pair/join` (PROTOCOL §2.6): waits for the desktop's decision, then trusts the device.
    func pairJoin(_ request: PairJoinRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        stats.pairRequest(.join)
        // The join belongs to the trace its session was paired in, known once the session is read.
        let trace = PendingSpan("POST /pair/join", kind: .server, tracer: context.tracer)
        do {
            let body = try await join(request, meta: meta, trace: trace)
            stats.pairSuccess(.join)
            trace.span.end(status: 200)
            return body
        } catch {
            stats.pairJoinFailure(error.code)
            logger.info("pair_join_failure code=\(error.code.rawValue) status=\(error.status)")
            trace.start(parent: meta.traceparent).end(refusedWith: error.code.rawValue, status: error.status)
            throw error
        }
    }

    private func join(_ request: PairJoinRequest, meta: RequestMeta, trace: PendingSpan) async throws(APIError) -> [UInt8] {
        var now = try open(
            .pairJoin, schemaVersion: nil, meta: meta, .sessionID(request.sessionID), .token(request.joinToken))
        let deviceName = Self.sanitizedDeviceName(request.deviceName)
        let joinToken = TokenDigest(of: request.joinToken)

        // Step 7: reserve a waiter slot before looking at the session.
        guard stats.pendingJoinWaiters.incrementIfBelow(configuration.maxPendingJoinWaiters) else { throw .pairingBackpressure }
        var reserved = true
        defer { if reserved { stats.pendingJoinWaiters.subtract(1, ordering: .relaxed) } }

        guard let session = try await currentSession(request.sessionID) else { throw .sessionNotFound }
        let span = trace.start(parent: session.state.withLock { $0.record.pairingTraceparent } ?? meta.traceparent)
        span.set("relay.session", Identifiers.redacted(session.id))
        let requestID = Identifiers.shortID()
        let clustered = context.bus != nil
        let pending: PendingJoin = try session.state.withLock { (s) throws(APIError) -> PendingJoin in
            guard !s.closed else { throw .sessionNotFound }
            let r = s.record
            guard now < r.joinTokenExpiresAtMillis else { throw .joinTokenExpired }
            guard r.joinTokenUsedAtMillis == nil else { throw .joinTokenAlreadyUsed }
            guard r.joinToken.matches(joinToken) else { throw .invalidJoinToken }
            guard r.devices.count < configuration.maxDevicesPerSession else {
                throw .deviceCapReached(configuration.maxDevicesPerSession)
            }
            guard s.desktop != nil || clustered else { throw .desktopNotConnected }
            if let inFlight = s.pendingJoin {
                throw APIError(409, .pairRequestInProgress, "A pairing approval request is already pending on desktop.",
                    extra: ["expiresAt": Timestamp.format(millis: inFlight.expiresAtMillis), "requestID": inFlight.requestID])
            }
            let remaining = max(r.joinTokenExpiresAtMillis - now, 0)
            let timeout = max(5000, min(configuration.pairApprovalTimeoutMillis, remaining))
            let pending = PendingJoin(requestID: requestID, expiresAtMillis: now + timeout)
            let frame = ServerMessage.pairRequest(
                sessionID: s.record.sessionID, requestID: requestID, deviceName: deviceName, requesterIP: meta.clientIP,
                requestedAt: Timestamp.format(millis: now), expiresAt: Timestamp.format(millis: now + timeout))
            var delivered = false
            let traceparent = span.traceparent
            if let desktop = s.desktop {
                delivered = router.deliver(frame, to: desktop)
                if delivered, let traceparent { s.pairRequestTrace = (requestID, traceparent) }
            }
            if !delivered {
                guard clustered else { throw .desktopNotConnected }
                router.publish(.desktop, sessionID: s.record.sessionID, payload: frame, traceparent: traceparent)
            }
            s.pendingJoin = pending
            return pending
        }

        // The wait is presence: while it lasts, `/pair/start` on any node refuses another desktop.
        _ = await presence.claim(.pendingJoin, of: session.id, holderID: requestID)
        let started = monotonicNanoseconds()
        let outcome = await pending.wait(timeoutMillis: pending.expiresAtMillis - now, clock: context.clock)
        await presence.release(.pendingJoin, of: session.id, holderID: requestID)
        stats.approvalWait(nanoseconds: monotonicNanoseconds() - started)
        reserved = false
        stats.pendingJoinWaiters.subtract(1, ordering: .relaxed)

        now = context.now
        let deviceID = Identifiers.deviceID()
        let token = Identifiers.deviceToken()
        let storedToken = context.storedToken(token)
        try session.state.withLock { (s) throws(APIError) in
            if s.pendingJoin === pending { s.pendingJoin = nil }
            guard !s.closed else { throw .desktopDisconnectedDuringApproval }
        }
        let grant: DeviceGrant?
        switch outcome {
        case .approved(let granted): grant = granted
        case .timedOut: throw .pairRequestTimedOut
        case .desktopGone: throw .desktopDisconnectedDuringApproval
        case .denied: throw .pairRequestDenied
        }
        // Redemption is a compare-and-save on the stored record: of two nodes approving the same
        // join token, exactly one succeeds (DECISIONS 4).
        let maxDevices = configuration.maxDevicesPerSession
        let (wsURL, _) = try await write(session.id) { (stored: inout SessionRecord?) throws(APIError) -> String in
            guard var r = stored else { throw .desktopDisconnectedDuringApproval }
            guard now < r.joinTokenExpiresAtMillis else { throw .joinTokenExpired }
            guard r.joinTokenUsedAtMillis == nil else { throw .joinTokenAlreadyUsed }
            guard r.joinToken.matches(joinToken) else { throw .invalidJoinToken }
            guard r.devices.count < maxDevices else { throw .deviceCapReached(maxDevices) }
            r.joinTokenUsedAtMillis = now
            r.touch(now)
            r.devices[deviceID] = DeviceRecord(
                deviceID: deviceID, currentToken: storedToken, name: deviceName ?? "Mobile Device",
                joinedAtMillis: now, lastSeenAtMillis: now, grant: grant)
            stored = r
            return r.relayWebSocketURL
        }
        router.publishSessionRefresh(session.id)
        span.set("relay.device", deviceID)
        logger.info("device_paired", metadata: ["session": "\(Identifiers.redacted(session.id))", "device": "\(deviceID)"])
        return Self.body([
            "accepted": .bool(true), "sessionID": .string(session.id), "deviceID": .string(deviceID),
            "deviceSessionToken": .string(token), "wsURL": .string(wsURL),
        ])
    }

    /// Trimmed; blank is absent; at most 64 Unicode scalars.
    static func sanitizedDeviceName(_ name: String?) -> String? {
        guard let name else { return nil }
        let trimmed = name.trimmingUnicodeWhitespace()
        guard !trimmed.isEmpty else { return nil }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: trimmed.unicodeScalars.prefix(64))
        return String(scalars)
    }

    // MARK: Desktop decisions

    /// Applies a `relay.pair_decision` to this node's pending join of the session; true if it matched.
    @discardableResult
    func applyPairDecision(sessionID: String, requestID: String, approved: Bool, grant: DeviceGrant?) -> Bool {
        guard let session = directory.session(sessionID) else { return false }
        let pending: PendingJoin? = session.state.withLock { s in
            guard let p = s.pendingJoin, Identifiers.constantTimeEqual(p.requestID, requestID) else { return nil }
            s.pendingJoin = nil
            return p
        }
        pending?.resolve(approved ? .approved(grant) : .denied)
        return pending != nil
    }

    /// A desktop's decision: resolve the local pending join, echo `relay.pair_result` to the
    /// deciding socket when it names a request, and tell the other nodes.
    func handlePairDecision(_ decision: PairDecision, frame: [UInt8], session: Session, from connection: any RelayConnection) {
        // An approval's grant is checked here, where the desktop can be told: a decision whose
        // grant cannot be used is refused whole, and the request stays pending for a corrected one.
        var grant: DeviceGrant?
        if decision.approved {
            do {
                grant = try decision.grant(defaultScope: configuration.defaultDeviceScope, now: context.now)
            } catch {
                _ = connection.send(ServerMessage.error(MobileError(.invalidScope, error.message)))
                return
            }
        }
        // Traced as a step of the join it answers, when this node handed the desktop that request.
        var span = TraceSpan.none
        if context.tracer != nil {
            let parent: String? = session.state.withLock { s in
                guard let trace = s.pairRequestTrace, let requestID = decision.requestID,
                    Identifiers.constantTimeEqual(trace.requestID, requestID)
                else { return nil }
                s.pairRequestTrace = nil
                return trace.traceparent
            }
            span = TraceSpan("relay.pair_decision", kind: .server, parent: parent, tracer: context.tracer)
            span.set("relay.session", Identifiers.redacted(session.id))
            span.set("relay.approved", decision.approved ? "true" : "false")
        }
        if let requestID = decision.requestID {
            let matched = applyPairDecision(sessionID: session.id, requestID: requestID, approved: decision.approved, grant: grant)
            span.set("relay.matched_here", matched ? "true" : "false")
            // A pair_result that does not fit is dropped silently (PROTOCOL §4.10).
            _ = connection.send(ServerMessage.pairResult(sessionID: session.id, requestID: requestID, approved: decision.approved))
        }
        router.publish(.pairDecision, sessionID: session.id, payload: frame, traceparent: span.traceparent)
        span.end()
    }

    // MARK: /pair/refresh

    /// `POST /pair/refresh` (PROTOCOL §2.7): a new join token, same session and devices.
    func pairRefresh(_ request: PairRefreshRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        stats.pairRequest(.refresh)
        let now = try open(
            .pairRefresh, schemaVersion: request.schemaVersion, meta: meta,
            .sessionID(request.sessionID), .token(request.joinToken), .token(request.desktopSessionToken))
        let expiry = try joinTokenExpiry(request.joinTokenExpiresAt, endpoint: .pairRefresh, now: now)
        // The write checks the desktop's token against the stored record it changes: one read.
        let sessionID = request.sessionID
        let desktopToken = TokenDigest(of: request.desktopSessionToken)
        let joinToken = context.storedToken(request.joinToken)
        let (wsURL, _) = try await write(sessionID) { (stored: inout SessionRecord?) throws(APIError) -> String in
            var r = try Self.ownedRecord(stored, desktopToken: desktopToken)
            r.joinToken = joinToken
            r.joinTokenExpiresAtMillis = expiry
            r.joinTokenUsedAtMillis = nil
            r.touch(now)
            stored = r
            return r.relayWebSocketURL
        }
        router.publishSessionRefresh(sessionID)
        stats.pairSuccess(.refresh)
        return Self.body(["accepted": .bool(true), "sessionID": .string(sessionID), "wsURL": .string(wsURL)])
    }

    // MARK: /pair/stop

    /// `POST /pair/stop` (PROTOCOL §2.8): the kill switch. Idempotent for unknown sessions.
    func pairStop(_ request: DesktopCredentialsRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        _ = try open(
            .pairStop, schemaVersion: request.schemaVersion, meta: meta,
            .sessionID(request.sessionID), .token(request.desktopSessionToken))
        let sessionID = request.sessionID
        let desktopToken = TokenDigest(of: request.desktopSessionToken)
        let (stopped, _) = try await write(sessionID, goneReason: .stoppedByDesktop, whenUnavailable: {
            // The kill switch still works here and on every node that hears the bus; the desktop
            // is told to retry so the stored record goes too.
            if let session = directory.session(sessionID),
                session.state.withLock({ $0.record.desktopSessionToken.matches(desktopToken) })
            {
                directory.closeSession(session, reason: .stoppedByDesktop)
                router.broadcastDisconnect(sessionID, reason: .stoppedByDesktop)
            }
        }) { (stored: inout SessionRecord?) throws(APIError) -> Bool in
            guard stored != nil else { return false }
            _ = try Self.ownedRecord(stored, desktopToken: desktopToken)
            stored = nil
            return true
        }
        if stopped {
            router.broadcastDisconnect(sessionID, reason: .stoppedByDesktop)
            router.publishSessionRefresh(sessionID, reason: .stoppedByDesktop)
        }
        return Self.body(["accepted": .bool(true), "sessionID": .string(sessionID)])
    }

    // MARK: /devices/list

    /// `POST /devices/list` (PROTOCOL §2.9): trusted devices, oldest first.
    func devicesList(_ request: DesktopCredentialsRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        let now = try open(
            .devicesList, schemaVersion: request.schemaVersion, meta: meta,
            .sessionID(request.sessionID), .token(request.desktopSessionToken))
        let session = try await desktopSession(request.sessionID, token: request.desktopSessionToken)
        // `connected`: a socket of the device on any node (this node's own count if the store
        // cannot say).
        let elsewhere = await presence.read(session.id)?.connectedDevices ?? []
        let devices: [JSONValue] = session.state.withLock { s in
            s.touch(now)
            let connected = Set(s.mobiles.values.map(\.deviceID)).union(elsewhere)
            return s.record.devices.values
                .map { d in
                    var entry: [String: JSONValue] = [
                        "deviceID": .string(d.deviceID), "deviceName": .string(d.name),
                        "connected": .bool(connected.contains(d.deviceID)),
                        "joinedAt": .string(Timestamp.format(millis: d.joinedAtMillis)),
                        "lastSeenAt": .string(Timestamp.format(millis: d.lastSeenAtMillis)),
                    ]
                    // Extension 10: a device with a grant shows it; one without is the contract's entry.
                    for field in d.grant?.wireFields ?? [] { entry[field.key] = field.value }
                    return (Timestamp.format(millis: d.joinedAtMillis), JSONValue.object(entry))
                }
                .sorted { $0.0 < $1.0 }
                .map(\.1)
        }
        return Self.body(["accepted": .bool(true), "sessionID": .string(session.id), "devices": .array(devices)])
    }

    // MARK: /devices/scope

    /// `POST /devices/scope` (extension 10): the device's new grant, written with compare-and-save
    /// like a revoke. Every node adopts it at the session refresh: its sockets of the device get
    /// `relay.scope`, and every command after is judged by the new grant.
    func devicesScope(_ request: DeviceScopeRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        let now = try open(
            .devicesScope, schemaVersion: request.schemaVersion, meta: meta,
            .sessionID(request.sessionID), .token(request.desktopSessionToken), .deviceID(request.deviceID))
        guard request.scope?.isNull == false else { throw .invalidScope("scope is required: \"control\" or \"view\".") }
        let grant: DeviceGrant
        do {
            // `scope` is present, so a grant always results.
            grant = try DeviceGrant.parse(
                scope: request.scope, allowedCommands: request.allowedCommands, grantExpiresAt: request.grantExpiresAt, now: now)
                ?? DeviceGrant(scope: .control)
        } catch {
            throw .invalidScope(error.message)
        }
        let sessionID = request.sessionID
        let desktopToken = TokenDigest(of: request.desktopSessionToken)
        try await write(sessionID) { (stored: inout SessionRecord?) throws(APIError) in
            var r = try Self.ownedRecord(stored, desktopToken: desktopToken)
            guard r.devices[request.deviceID] != nil else { throw .deviceNotFound }
            r.devices[request.deviceID]?.grant = grant
            r.touch(now)
            stored = r
        }
        router.publishSessionRefresh(sessionID)
        stats.scopeChanged()
        logger.info("device_scope_changed", metadata: [
            "session": "\(Identifiers.redacted(sessionID))", "device": "\(request.deviceID)", "scope": "\(grant.scope.rawValue)",
        ])
        var body: [String: JSONValue] = ["accepted": .bool(true), "sessionID": .string(sessionID), "deviceID": .string(request.deviceID)]
        for field in grant.wireFields { body[field.key] = field.value }
        return Self.body(body)
    }

    // MARK: /devices/revoke

    /// `POST /devices/revoke` (PROTOCOL §2.10): forgets a device everywhere and closes its socket.
    func devicesRevoke(_ request: DeviceRevokeRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        let now = try open(
            .devicesRevoke, schemaVersion: request.schemaVersion, meta: meta,
            .sessionID(request.sessionID), .token(request.desktopSessionToken), .deviceID(request.deviceID))
        // Adopting the stored record closes the device's socket here; the targeted envelope closes
        // it on nodes that hold one, and the session refresh updates every other copy.
        let sessionID = request.sessionID
        let desktopToken = TokenDigest(of: request.desktopSessionToken)
        let (_, session) = try await write(sessionID) { (stored: inout SessionRecord?) throws(APIError) in
            var r = try Self.ownedRecord(stored, desktopToken: desktopToken)
            guard r.devices.removeValue(forKey: request.deviceID) != nil else { throw .deviceNotFound }
            r.touch(now)
            stored = r
        }
        router.publish(.mobile, sessionID: sessionID, payload: ServerMessage.disconnect(.deviceRevoked), targetDeviceID: request.deviceID)
        // The devices connected anywhere but the revoked one, whose sockets are closing.
        let live = await presence.read(sessionID)
        let count = session?.state.withLock { $0.connectedDeviceCount(live: live, excluding: request.deviceID) }
            ?? live?.connectedDeviceCount(excluding: request.deviceID) ?? 0
        router.publish(.desktop, sessionID: sessionID, payload: ServerMessage.deviceCount(sessionID: sessionID, connectedDeviceCount: count))
        router.publishSessionRefresh(sessionID)
        return Self.body(["accepted": .bool(true), "sessionID": .string(sessionID), "deviceID": .string(request.deviceID)])
    }
}

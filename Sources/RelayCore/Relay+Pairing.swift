import Synchronization
import Logging
import RelayProtocol

/// Who made an HTTP request: what the origin and rate-limit checks need.
public struct RequestMeta: Sendable {
    public var clientIP: String
    public var origin: String?
    public init(clientIP: String, origin: String?) {
        self.clientIP = clientIP
        self.origin = origin
    }
}

/// The six POST endpoints of PROTOCOL §2, each in the contract's exact check order. Success
/// returns the JSON body; failure throws the ``APIError`` whose status, code and message go out.
extension Relay {
    // MARK: Shared checks

    private func checkSchema(_ version: UInt32?) throws(APIError) {
        if let version, version != 2 { throw .unsupportedSchemaVersion }
    }

    private func checkOriginAndRate(_ meta: RequestMeta, management: Bool, now: Int64) throws(APIError) {
        guard configuration.origins.allowsRequest(origin: meta.origin) else { throw .originNotAllowed }
        guard ipLimiter.consume(ip: meta.clientIP, limit: configuration.maxPairRequestsPerMinute, now: now) else {
            throw management ? .managementRateLimited : .pairingRateLimited
        }
    }

    private func desktopSession(_ sessionID: String, token: String) throws(APIError) -> Session {
        guard let session = registry.session(sessionID) else { throw .sessionNotFound }
        let matches = session.state.withLock { Identifiers.constantTimeEqual($0.record.desktopSessionToken, token) }
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
        return configuration.defaultWebSocketURL
    }

    // MARK: /pair/start

    /// `POST /pair/start` (PROTOCOL §2.5): creates, or replaces, a session.
    public func pairStart(_ request: PairStartRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        stats.pairRequest(.start)
        let now = wallClockMillis()
        try checkSchema(request.schemaVersion)
        try checkOriginAndRate(meta, management: false, now: now)
        guard Identifiers.isOpaqueToken(request.sessionID, minLength: 16),
            Identifiers.isOpaqueToken(request.joinToken, minLength: 22),
            Identifiers.isOpaqueToken(request.desktopSessionToken, minLength: 22)
        else {
            throw APIError(400, .invalidPairStart, "sessionID, joinToken, and desktopSessionToken must be high-entropy opaque identifiers.")
        }
        guard let expiresAt = Timestamp.parseMillis(request.joinTokenExpiresAt) else {
            throw APIError(400, .invalidPairStart, "joinTokenExpiresAt must be a valid RFC3339 timestamp.")
        }
        guard expiresAt > now else { throw .expiredJoinToken }
        let wsURL = webSocketURL(requested: request.relayWebSocketURL)
        let idle = min(max(request.idleTimeoutSeconds ?? 1800, 60), 86_400)
        let record = SessionRecord(
            sessionID: request.sessionID, joinToken: request.joinToken, joinTokenExpiresAtMillis: expiresAt,
            desktopSessionToken: request.desktopSessionToken, relayWebSocketURL: wsURL, idleTimeoutSeconds: idle,
            createdAtMillis: now, lastActivityAtMillis: now)

        let (session, replaced) = try installSession(record, now: now)
        if replaced {
            let disconnect = ServerMessage.disconnect(.replacedByNewPairStart)
            publish(.desktop, sessionID: session.id, payload: disconnect)
            publish(.mobile, sessionID: session.id, payload: disconnect)
        }
        await persist(session)
        publish(.sessionRefresh, sessionID: session.id, payload: sessionRefreshBody(session.id))
        stats.pairSuccess(.start)
        return Self.body(["accepted": .bool(true), "sessionID": .string(session.id), "wsURL": .string(wsURL)])
    }

    /// Steps 10–12: the conflict rule, replacement of a local session, and the new record.
    private func installSession(_ record: SessionRecord, now: Int64) throws(APIError) -> (Session, replaced: Bool) {
        while true {
            let fresh = Session(record: record, version: 0)
            guard let existing = registry.session(record.sessionID) else {
                let inserted = registry.indexes.withLock { ix -> Bool in
                    guard ix.sessions[record.sessionID] == nil else { return false }
                    ix.sessions[record.sessionID] = fresh
                    SessionRegistry.index(record, into: &ix, now: now)
                    return true
                }
                if inserted { return (fresh, false) }
                continue
            }
            enum Step { case conflict, retry, replaced(version: UInt64) }
            let step: Step = existing.state.withLock { s in
                if s.closed { return .retry }
                let active = s.hasLocalSockets || !s.record.devices.isEmpty
                if active && !Identifiers.constantTimeEqual(s.record.desktopSessionToken, record.desktopSessionToken) {
                    return .conflict
                }
                return .replaced(version: s.version)
            }
            switch step {
            case .conflict:
                throw .sessionAlreadyActive
            case .retry:
                continue
            case .replaced(let version):
                guard closeSession(existing, reason: .replacedByNewPairStart) != nil else { continue }
                let inserted = registry.indexes.withLock { ix -> Bool in
                    guard ix.sessions[record.sessionID] == nil else { return false }
                    ix.sessions[record.sessionID] = Session(record: record, version: version + 1)
                    SessionRegistry.index(record, into: &ix, now: now)
                    return true
                }
                if inserted, let session = registry.session(record.sessionID) { return (session, true) }
            }
        }
    }

    // MARK: /pair/join

    /// `POST /pair/join` (PROTOCOL §2.6): waits for the desktop's decision, then trusts the device.
    public func pairJoin(_ request: PairJoinRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        stats.pairRequest(.join)
        do {
            let body = try await join(request, meta: meta)
            stats.pairSuccess(.join)
            return body
        } catch {
            logger.info("pair_join_failure code=\(error.code.rawValue) status=\(error.status)")
            throw error
        }
    }

    private func join(_ request: PairJoinRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        var now = wallClockMillis()
        try checkOriginAndRate(meta, management: false, now: now)
        guard Identifiers.isOpaqueToken(request.sessionID, minLength: 16),
            Identifiers.isOpaqueToken(request.joinToken, minLength: 22)
        else { throw APIError(400, .invalidPairJoin, "sessionID and joinToken are required.") }
        let deviceName = Self.sanitizedDeviceName(request.deviceName)

        // Step 7: reserve a waiter slot before looking at the session.
        guard reserveWaiter() else { throw .pairingBackpressure }
        var reserved = true
        defer { if reserved { stats.pendingJoinWaiters.subtract(1, ordering: .relaxed) } }

        guard let session = registry.session(request.sessionID) else { throw .sessionNotFound }
        let requestID = Identifiers.shortID()
        let pending: PendingJoin = try session.state.withLock { (s) throws(APIError) -> PendingJoin in
            guard !s.closed else { throw .sessionNotFound }
            let r = s.record
            guard now < r.joinTokenExpiresAtMillis else { throw .joinTokenExpired }
            guard r.joinTokenUsedAtMillis == nil else { throw .joinTokenAlreadyUsed }
            guard Identifiers.constantTimeEqual(r.joinToken, request.joinToken) else { throw .invalidJoinToken }
            guard r.devices.count < configuration.maxDevicesPerSession else {
                throw .deviceCapReached(configuration.maxDevicesPerSession)
            }
            guard s.desktop != nil || bus != nil else { throw .desktopNotConnected }
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
            if let desktop = s.desktop { delivered = deliver(frame, to: desktop) }
            if !delivered {
                guard bus != nil else { throw .desktopNotConnected }
                publish(.desktop, sessionID: s.record.sessionID, payload: frame)
            }
            s.pendingJoin = pending
            return pending
        }

        let started = ContinuousClock.now
        let outcome = await pending.wait(timeoutMillis: pending.expiresAtMillis - now)
        stats.approvalWait(since: started)
        reserved = false
        stats.pendingJoinWaiters.subtract(1, ordering: .relaxed)

        now = wallClockMillis()
        let deviceID = Identifiers.deviceID()
        let token = Identifiers.deviceToken()
        let wsURL: String = try session.state.withLock { (s) throws(APIError) -> String in
            if s.pendingJoin === pending { s.pendingJoin = nil }
            guard !s.closed else { throw .desktopDisconnectedDuringApproval }
            switch outcome {
            case .approved: break
            case .timedOut: throw .pairRequestTimedOut
            case .desktopGone: throw .desktopDisconnectedDuringApproval
            case .denied: throw .pairRequestDenied
            }
            guard now < s.record.joinTokenExpiresAtMillis else { throw .joinTokenExpired }
            guard s.record.joinTokenUsedAtMillis == nil,
                Identifiers.constantTimeEqual(s.record.joinToken, request.joinToken)
            else { throw .invalidJoinToken }
            s.record.joinTokenUsedAtMillis = now
            s.touch(now)
            s.record.devices[deviceID] = DeviceRecord(
                deviceID: deviceID, currentToken: token, name: deviceName ?? "Mobile Device",
                joinedAtMillis: now, lastSeenAtMillis: now)
            registry.indexes.withLock { ix in
                ix.deviceTokens[token] = .init(sessionID: session.id, deviceID: deviceID, expiresAtMillis: nil)
            }
            return s.record.relayWebSocketURL
        }
        await persist(session)
        publish(.sessionRefresh, sessionID: session.id, payload: sessionRefreshBody(session.id))
        logger.info("device paired", metadata: ["session": "\(Identifiers.redacted(session.id))", "device": "\(deviceID)"])
        return Self.body([
            "accepted": .bool(true), "sessionID": .string(session.id), "deviceID": .string(deviceID),
            "deviceSessionToken": .string(token), "wsURL": .string(wsURL),
        ])
    }

    private func reserveWaiter() -> Bool {
        var current = stats.pendingJoinWaiters.load(ordering: .relaxed)
        while current < configuration.maxPendingJoinWaiters {
            let (exchanged, original) = stats.pendingJoinWaiters.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
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
    func applyPairDecision(sessionID: String, requestID: String, approved: Bool) -> Bool {
        guard let session = registry.session(sessionID) else { return false }
        let pending: PendingJoin? = session.state.withLock { s in
            guard let p = s.pendingJoin, Identifiers.constantTimeEqual(p.requestID, requestID) else { return nil }
            s.pendingJoin = nil
            return p
        }
        pending?.resolve(approved ? .approved : .denied)
        return pending != nil
    }

    // MARK: /pair/refresh

    /// `POST /pair/refresh` (PROTOCOL §2.7): a new join token, same session and devices.
    public func pairRefresh(_ request: PairRefreshRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        stats.pairRequest(.refresh)
        let now = wallClockMillis()
        try checkSchema(request.schemaVersion)
        try checkOriginAndRate(meta, management: true, now: now)
        guard Identifiers.isOpaqueToken(request.sessionID, minLength: 16),
            Identifiers.isOpaqueToken(request.joinToken, minLength: 22),
            Identifiers.isOpaqueToken(request.desktopSessionToken, minLength: 22)
        else { throw APIError(400, .invalidPairRefresh, "sessionID, joinToken, and desktopSessionToken are required.") }
        guard let expiresAt = Timestamp.parseMillis(request.joinTokenExpiresAt) else {
            throw APIError(400, .invalidPairRefresh, "joinTokenExpiresAt must be a valid RFC3339 timestamp.")
        }
        guard expiresAt > now else { throw .expiredJoinToken }
        let session = try desktopSession(request.sessionID, token: request.desktopSessionToken)
        let wsURL: String = session.state.withLock { s in
            s.record.joinToken = request.joinToken
            s.record.joinTokenExpiresAtMillis = expiresAt
            s.record.joinTokenUsedAtMillis = nil
            s.touch(now)
            return s.record.relayWebSocketURL
        }
        await persist(session)
        publish(.sessionRefresh, sessionID: session.id, payload: sessionRefreshBody(session.id))
        stats.pairSuccess(.refresh)
        return Self.body(["accepted": .bool(true), "sessionID": .string(session.id), "wsURL": .string(wsURL)])
    }

    // MARK: /pair/stop

    /// `POST /pair/stop` (PROTOCOL §2.8): the kill switch. Idempotent for unknown sessions.
    public func pairStop(_ request: DesktopCredentialsRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        let now = wallClockMillis()
        try checkSchema(request.schemaVersion)
        try checkOriginAndRate(meta, management: true, now: now)
        guard Identifiers.isOpaqueToken(request.sessionID, minLength: 16),
            Identifiers.isOpaqueToken(request.desktopSessionToken, minLength: 22)
        else { throw APIError(400, .invalidPairStop, "sessionID and desktopSessionToken are required.") }
        if let session = registry.session(request.sessionID) {
            let matches = session.state.withLock { Identifiers.constantTimeEqual($0.record.desktopSessionToken, request.desktopSessionToken) }
            guard matches else { throw .invalidDesktopSessionToken }
            if let version = closeSession(session, reason: .stoppedByDesktop) {
                let disconnect = ServerMessage.disconnect(.stoppedByDesktop)
                publish(.desktop, sessionID: session.id, payload: disconnect)
                publish(.mobile, sessionID: session.id, payload: disconnect)
                await deleteFromStore(sessionID: session.id, version: version)
            }
        }
        return Self.body(["accepted": .bool(true), "sessionID": .string(request.sessionID)])
    }

    // MARK: /devices/list

    /// `POST /devices/list` (PROTOCOL §2.9): trusted devices, oldest first.
    public func devicesList(_ request: DesktopCredentialsRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        let now = wallClockMillis()
        try checkSchema(request.schemaVersion)
        try checkOriginAndRate(meta, management: true, now: now)
        guard Identifiers.isOpaqueToken(request.sessionID, minLength: 16),
            Identifiers.isOpaqueToken(request.desktopSessionToken, minLength: 22)
        else { throw APIError(400, .invalidDevicesList, "sessionID and desktopSessionToken are required.") }
        let session = try desktopSession(request.sessionID, token: request.desktopSessionToken)
        let devices: [JSONValue] = session.state.withLock { s in
            s.touch(now)
            let connected = Set(s.mobiles.values.map(\.deviceID))
            return s.record.devices.values
                .map { d in
                    (Timestamp.format(millis: d.joinedAtMillis), JSONValue.object([
                        "deviceID": .string(d.deviceID), "deviceName": .string(d.name),
                        "connected": .bool(connected.contains(d.deviceID)),
                        "joinedAt": .string(Timestamp.format(millis: d.joinedAtMillis)),
                        "lastSeenAt": .string(Timestamp.format(millis: d.lastSeenAtMillis)),
                    ]))
                }
                .sorted { $0.0 < $1.0 }
                .map(\.1)
        }
        return Self.body(["accepted": .bool(true), "sessionID": .string(session.id), "devices": .array(devices)])
    }

    // MARK: /devices/revoke

    /// `POST /devices/revoke` (PROTOCOL §2.10): forgets a device everywhere and closes its socket.
    public func devicesRevoke(_ request: DeviceRevokeRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        let now = wallClockMillis()
        try checkSchema(request.schemaVersion)
        try checkOriginAndRate(meta, management: true, now: now)
        guard Identifiers.isOpaqueToken(request.sessionID, minLength: 16),
            Identifiers.isOpaqueToken(request.desktopSessionToken, minLength: 22),
            Identifiers.isOpaqueToken(request.deviceID, minLength: 8)
        else {
            throw APIError(400, .invalidDeviceRevoke, "sessionID, desktopSessionToken, and deviceID are required.")
        }
        let session = try desktopSession(request.sessionID, token: request.desktopSessionToken)
        let found = session.state.withLock { s in s.record.devices[request.deviceID] != nil }
        guard found else { throw .deviceNotFound }
        let count = revokeDeviceLocally(session, deviceID: request.deviceID, now: now)
        publish(.mobile, sessionID: session.id, payload: ServerMessage.disconnect(.deviceRevoked), targetDeviceID: request.deviceID)
        if let count {
            publish(.desktop, sessionID: session.id, payload: ServerMessage.deviceCount(sessionID: session.id, connectedDeviceCount: count))
        }
        await persist(session)
        updateSubscription(session)
        return Self.body(["accepted": .bool(true), "sessionID": .string(session.id), "deviceID": .string(request.deviceID)])
    }

    /// Removes a device from the local copy: its tokens, buckets and socket; tells the local desktop
    /// the new count. Returns that count, or nil if the device was unknown here.
    @discardableResult
    func revokeDeviceLocally(_ session: Session, deviceID: String, now: Int64) -> Int? {
        let result: (sockets: [any RelayConnection], desktop: (any RelayConnection)?, count: Int)? = session.state.withLock { s in
            guard s.record.devices[deviceID] != nil else { return nil }
            let tokens = s.removeDevice(deviceID)
            s.touch(now)
            let sockets = s.mobiles.values.filter { $0.deviceID == deviceID }.map(\.connection)
            for socket in sockets { s.removeMobile(connectionID: socket.connectionID) }
            registry.indexes.withLock { ix in SessionRegistry.removeDeviceTokens(tokens, sessionID: session.id, from: &ix) }
            return (sockets, s.desktop, s.mobiles.count)
        }
        guard let result else { return nil }
        for socket in result.sockets {
            stats.disconnect(.deviceRevoked)
            socket.terminate(.deviceRevoked)
        }
        if let desktop = result.desktop {
            deliver(ServerMessage.deviceCount(sessionID: session.id, connectedDeviceCount: result.count), to: desktop, countFailure: false)
        }
        return result.count
    }

    // MARK: Helpers

    func sessionRefreshBody(_ sessionID: String) -> [UInt8] {
        Array(JSONValue.object(["sessionID": .string(sessionID), "type": .string("relay.session_refresh")]).serialized.utf8)
    }

    static func body(_ fields: [String: JSONValue]) -> [UInt8] {
        Array(JSONValue.object(fields).serialized.utf8)
    }
}

// The phone side of a session for apps: join from a scanned link, stay connected, send commands.

import RelayProtocol
import Synchronization

/// A phone paired with a desktop through the relay.
///
/// ```swift
/// let link = try RelayJoinLink(parsing: scannedText)
/// let phone = try await RelayPhoneClient.join(link, deviceName: "Ana's iPhone") { credentials in
///     keychain.store(credentials)          // every rotation: store before anything else
/// }
/// async let end = phone.run()
/// for await event in phone.events { … }
/// ```
///
/// ``run()`` keeps one WebSocket to the relay up: it reconnects with backoff after a drop, at once
/// when a node drains, and stops for good when the session ends for this phone (revoked, stopped,
/// expired). Every connection rotates the device token: the callback and a
/// ``RelayPhoneEvent/credentialsChanged(_:)`` event give each new value, and a phone started
/// again from stored credentials with ``init(relayURL:credentials:lastProcessedSeq:origin:configuration:onCredentialsChanged:)``
/// carries on. Envelopes missed while away, or lost in a gap, are recovered by asking the desktop
/// for a snapshot. Tokens appear in no description and no error.
public final class RelayPhoneClient: Sendable {
    /// The relay's base URL (`https://…`).
    public let relayURL: String
    /// The `Origin` sent on the join and the WebSocket upgrade; the relay admits phones whose
    /// origin it allows (`ALLOWED_ORIGINS`, by default the relay's own).
    public let origin: String?
    /// How the client connects.
    public let configuration: RelayClientConfiguration
    /// Everything that happens on the connection, in order, for one consumer. It finishes when
    /// ``run()`` returns.
    public let events: AsyncStream<RelayPhoneEvent>

    private struct State {
        var credentials: RelayPhoneCredentials?
        var socket: RelayWebSocket?
        var commandSeq: UInt64 = 0
        var sequence = DesktopSequence()
        /// A snapshot is wanted as soon as the desktop is online (this connection is new, and the
        /// desktop was away when it was made, or refused the last request as offline).
        var snapshotWhenDesktopOnline = false
        /// Extension 11: false once a relay answered `relay.resume` as an unknown command.
        var resumeSupported = true
        /// A `relay.resume` is out and its `relay.resumed` has not come.
        var resuming = false
        /// Envelopes that arrived while resuming: those sent live after `auth_ok` come before the
        /// replay of older ones, so they are applied in `seq` order once the replay ends.
        var resumeBuffer: [RelayEnvelope] = []
        /// Extension 12: the session's end-to-end state, for a phone that joined through an
        /// `e2e=1` link.
        var endToEnd: PhoneEndToEnd?
        /// Sealed envelopes of an epoch whose key the running handshake will bring.
        var heldForEpoch: [RelayEnvelope] = []
        var lastCommandFrame: String?
        /// Counts handshakes started, so a timeout knows whether its handshake is still the one
        /// under way.
        var handshakeGeneration = 0
        /// The grant is `view`: the relay refuses this phone's sealed frames, so it cannot prove its
        /// pairing secret to the desktop and keeps pairing with IKpsk2.
        var viewOnly = false
        var hasRun = false
    }

    /// Sealed envelopes held while a handshake brings their epoch's key.
    static let maxHeldForEpoch = 256

    private let state: Mutex<State>
    private let continuation: AsyncStream<RelayPhoneEvent>.Continuation
    private let onCredentialsChanged: (@Sendable (RelayPhoneCredentials) -> Void)?
    private let http: RelayHTTPClient
    private let closeSignal = CloseSignal()

    /// A phone for the relay at `relayURL`: pass the credentials stored after an earlier join, or
    /// `nil` and call ``join(_:deviceName:timeout:)`` first.
    ///
    /// - Parameters:
    ///   - origin: The `Origin` to send; by default the origin of `relayURL`, which a relay allows
    ///     unless `ALLOWED_ORIGINS` says otherwise.
    ///   - lastProcessedSeq: The `seq` of the last envelope the app applied to the state it kept
    ///     (extension 11): the first connection asks the relay to replay what came after it
    ///     instead of asking the desktop for a whole snapshot. `nil`: a snapshot.
    ///   - onCredentialsChanged: Called with the new credentials after the join and after every
    ///     connection that rotated the token, before any other event of that connection.
    public init(
        relayURL: String,
        credentials: RelayPhoneCredentials?,
        lastProcessedSeq: UInt64? = nil,
        origin: String? = nil,
        configuration: RelayClientConfiguration = RelayClientConfiguration(),
        onCredentialsChanged: (@Sendable (RelayPhoneCredentials) -> Void)? = nil
    ) {
        self.relayURL = relayURL
        self.origin = origin ?? RelayEndpoint.origin(of: relayURL)
        self.configuration = configuration
        self.onCredentialsChanged = onCredentialsChanged
        self.http = RelayHTTPClient(baseURL: relayURL, tls: configuration.tls, eventLoopGroup: configuration.eventLoopGroup)
        var state = State(credentials: credentials)
        if let lastProcessedSeq { state.sequence.resume(after: lastProcessedSeq) }
        self.state = Mutex(state)
        (events, continuation) = AsyncStream.makeStream(of: RelayPhoneEvent.self)
    }

    /// Joins the session of a scanned link: waits (up to `timeout`, the relay's own limit is 45 s)
    /// while the desktop's user approves, and returns a phone holding its first credentials.
    ///
    /// - Throws: ``RelayClientError/requestRefused(operation:status:code:message:)`` when the relay
    ///   refuses (`pair_request_denied`, `join_token_expired`, `invalid_join_token`,
    ///   `desktop_not_connected`, `pair_request_timed_out`, …), or a transport error.
    public static func join(
        _ link: RelayJoinLink,
        deviceName: String? = nil,
        origin: String? = nil,
        configuration: RelayClientConfiguration = RelayClientConfiguration(),
        timeout: Duration = .seconds(60),
        onCredentialsChanged: (@Sendable (RelayPhoneCredentials) -> Void)? = nil
    ) async throws -> RelayPhoneClient {
        let phone = RelayPhoneClient(
            relayURL: link.relayBaseURL, credentials: nil, origin: origin, configuration: configuration,
            onCredentialsChanged: onCredentialsChanged)
        try await phone.join(link, deviceName: deviceName, timeout: timeout)
        return phone
    }

    /// `POST /pair/join` for `link` on this phone's relay; a 200 replaces the credentials.
    ///
    /// - Throws: see ``join(_:deviceName:origin:configuration:timeout:onCredentialsChanged:)``.
    @discardableResult
    public func join(_ link: RelayJoinLink, deviceName: String? = nil, timeout: Duration = .seconds(60)) async throws -> RelayPhoneCredentials {
        var body: [String: JSONValue] = ["sessionID": .string(link.sessionID), "joinToken": .string(link.joinToken)]
        if let deviceName { body["deviceName"] = .string(deviceName) }
        let response = try await http.postJSON(path: "/pair/join", body: .object(body), headers: originHeaders, timeout: timeout)
        let json = try response.requireSuccess(operation: "POST /pair/join")
        guard let deviceID = json["deviceID"]?.stringValue, let token = json["deviceSessionToken"]?.stringValue else {
            throw RelayClientError.unexpectedJSON(expected: "deviceID and deviceSessionToken", received: "members \(json.objectValue?.keys.sorted() ?? [])")
        }
        let credentials = RelayPhoneCredentials(
            sessionID: json["sessionID"]?.stringValue ?? link.sessionID, deviceID: deviceID, deviceSessionToken: token,
            wsURL: json["wsURL"]?.stringValue, endToEnd: link.endToEnd.map(RelayPhoneEndToEndKeys.init(link:)))
        state.withLock { $0.credentials = credentials }
        announce(credentials)
        return credentials
    }

    /// The credentials to store now (`nil` before a join).
    public var credentials: RelayPhoneCredentials? { state.withLock { $0.credentials } }

    /// Whether a connection is authenticated now.
    public var isConnected: Bool { state.withLock { $0.socket != nil } }

    /// Keeps the phone connected until the session ends for it, ``close()`` is called, the task is
    /// cancelled, or the reconnect policy gives up; then finishes ``events``. Call it once: a second
    /// call returns `.closed` at once, and connecting again after it returned takes a new client
    /// (from the stored credentials).
    public func run() async -> RelayConnectionEnd {
        let first = state.withLock { state -> Bool in
            defer { state.hasRun = true }
            return !state.hasRun
        }
        guard first else { return .closed }
        let end = await SessionConnection(configuration: configuration, role: self, closeSignal: closeSignal).run()
        state.withLock { $0.socket = nil }
        continuation.finish()
        return end
    }

    /// Sends `command` to the desktop and returns its `commandID` (a random one unless given; the
    /// desktop's `command_ack` names it). On an end-to-end session it is sealed: send after
    /// ``RelayPhoneEvent/endToEnd(_:)`` ``RelayEndToEndEvent/secured(deviceID:epoch:)`` of the
    /// connection.
    ///
    /// - Throws: ``RelayClientError/notConnected(_:)`` between connections; the command is not
    ///   queued, since a command sent late may no longer be what the user meant.
    ///   ``RelayClientError/notReady(_:)`` on an end-to-end session whose handshake has not
    ///   completed on this connection.
    @discardableResult
    public func send(_ command: RelayCommand, commandID: String? = nil) async throws -> String {
        let id = commandID ?? RelayTokens.random(byteCount: 12)
        var wrapper = command.fields
        wrapper["name"] = .string(command.name)
        wrapper["commandID"] = .string(id)
        let text = try state.withLock { state throws -> (RelayWebSocket, String) in
            guard let socket = state.socket, let sessionID = state.credentials?.sessionID else {
                throw RelayClientError.notConnected("the phone is not connected to the relay; the command was not sent")
            }
            if let endToEnd = state.endToEnd {
                guard endToEnd.isSecured else {
                    throw RelayClientError.notReady("the end-to-end handshake has not completed on this connection; the command was not sent")
                }
                state.commandSeq += 1
                let shell = EnvelopeShell(sessionID: sessionID, seq: state.commandSeq, timestamp: RelayTimestamp.now())
                let sealed = try endToEnd.seal(["type": "command", "payload": .object(wrapper)], shell: shell)
                return (socket, shell.envelope(payload: sealed))
            }
            state.commandSeq += 1
            return (socket, RelayCommand.envelope(sessionID: sessionID, seq: state.commandSeq, name: command.name, commandID: id, fields: command.fields))
        }
        state.withLock { $0.lastCommandFrame = text.1 }
        try await text.0.sendText(text.1)
        return id
    }

    /// Sends `text` as it is (tests inject tampered and replayed frames).
    package func sendRawText(_ text: String) async throws {
        guard let socket = state.withLock({ $0.socket }) else { throw RelayClientError.notConnected("the phone is not connected") }
        try await socket.sendText(text)
    }

    /// The last command frame sent, as sent (tests replay it).
    package var lastCommandFrame: String? { state.withLock { $0.lastCommandFrame } }

    /// Whether this phone's session is end-to-end encrypted (it joined through an `e2e=1` link).
    public var isEndToEnd: Bool { state.withLock { $0.credentials?.endToEnd != nil } }

    /// Asks the desktop for a snapshot (`relay.snapshot_request`); it arrives as a `snapshot`
    /// envelope. The client asks by itself after a gap and after reconnecting.
    public func requestSnapshot(reason: String? = nil) async throws {
        let (socket, sessionID, lastSeq) = try state.withLock { state throws(RelayClientError) in
            guard let socket = state.socket, let sessionID = state.credentials?.sessionID else {
                throw .notConnected("the phone is not connected to the relay; no snapshot was requested")
            }
            state.sequence.awaitingSnapshot = true
            return (socket, sessionID, state.sequence.last)
        }
        try await socket.sendText(Self.snapshotRequest(sessionID: sessionID, reason: reason, lastSeq: lastSeq))
    }

    /// Ends the connection (close 1000) and stops reconnecting; ``run()`` then returns `.closed`.
    public func close() async {
        closeSignal.close()
        let socket = state.withLock { $0.socket }
        await socket?.close()
    }

    // MARK: The phone's side of SessionConnection

    private var originHeaders: [(String, String)] { origin.map { [("Origin", $0)] } ?? [] }

    func connectionTarget() throws -> (url: String, token: String, headers: [(String, String)]) {
        guard let credentials = credentials else { throw RelayClientError.notReady("the phone has not joined a session") }
        guard let url = credentials.wsURL ?? RelayEndpoint.defaultWebSocketURL(baseURL: relayURL) else {
            throw RelayClientError.invalidURL(relayURL)
        }
        return (url, credentials.deviceSessionToken, originHeaders)
    }

    func authenticated(_ authOK: JSONValue, socket: RelayWebSocket, isReconnect: Bool) async {
        let desktopConnected = authOK["desktopConnected"]?.boolValue ?? false
        let (rotated, snapshot) = state.withLock { state -> (RelayPhoneCredentials?, String?) in
            state.socket = socket
            state.commandSeq = 0
            state.viewOnly = DeviceGrant(fields: authOK)?.scope == .view
            guard var credentials = state.credentials else { return (nil, nil) }
            let before = credentials
            if let next = authOK["nextDeviceSessionToken"]?.stringValue { credentials.deviceSessionToken = next }
            if let deviceID = authOK["deviceID"]?.stringValue { credentials.deviceID = deviceID }
            if let sessionID = authOK["sessionID"]?.stringValue { credentials.sessionID = sessionID }
            state.credentials = credentials
            // A new connection, new handshake keys: the phone's `seq` starts again at 1.
            // What was opened stays known, so a frame replayed after a reconnect is still refused.
            if let keys = credentials.endToEnd {
                if state.endToEnd == nil {
                    state.endToEnd = PhoneEndToEnd(keys: keys, sessionID: credentials.sessionID, deviceID: credentials.deviceID)
                }
                state.endToEnd?.newConnection()
                state.heldForEpoch = []
            }
            // Whatever the desktop sent while this phone had no connection (its hello right after
            // approving, or anything during a drop) is missing. A phone that has processed an
            // envelope asks the relay to replay the rest (extension 11), which works with the
            // desktop away too; otherwise, or on a relay without it, it asks the desktop for a
            // snapshot, now or once the desktop is back.
            state.resumeBuffer = []
            if let last = state.sequence.last, state.resumeSupported {
                state.resuming = true
                state.snapshotWhenDesktopOnline = false
                state.sequence.awaitingSnapshot = true  // no gap asks for a snapshot during the replay
                return (credentials != before ? credentials : nil, Self.resumeRequest(sessionID: credentials.sessionID, lastSeq: last))
            }
            state.snapshotWhenDesktopOnline = !desktopConnected
            state.sequence.awaitingSnapshot = desktopConnected
            let snapshot = desktopConnected ? Self.snapshotRequest(
                sessionID: credentials.sessionID, reason: isReconnect ? "reconnected" : "connected", lastSeq: state.sequence.last) : nil
            return (credentials != before ? credentials : nil, snapshot)
        }
        if let rotated { announce(rotated) }
        emit(.connected(desktopConnected: desktopConnected))
        if let grant = DeviceGrant(fields: authOK) { emit(.grant(grant)) }
        if desktopConnected { await startHandshake(socket: socket) }
        if let snapshot { try? await socket.sendText(snapshot) }
    }

    // MARK: End-to-end (extension 12)

    /// Starts a handshake on an end-to-end session (after each connection, when the desktop comes
    /// back, and for an epoch this phone has no key for).
    private func startHandshake(socket: RelayWebSocket) async {
        let frame = state.withLock { state -> Result<(String, Int), EndToEndError>? in
            guard var endToEnd = state.endToEnd, let sessionID = state.credentials?.sessionID else { return nil }
            defer { state.endToEnd = endToEnd }
            do {
                let payload = try endToEnd.startHandshake()
                let envelope: JSONValue = ["schemaVersion": 2, "sessionID": .string(sessionID), "timestamp": .string(RelayTimestamp.now()), "payload": payload]
                state.handshakeGeneration += 1
                return .success((envelope.serialized, state.handshakeGeneration))
            } catch let error as EndToEndError {
                return .failure(error)
            } catch {
                return .failure(.handshakeFailed("\(error)"))
            }
        }
        switch frame {
        case .success(let (text, generation))?:
            try? await socket.sendText(text)
            watchHandshake(generation, socket: socket)
        case .failure(let error)?: emit(.endToEnd(.refused(deviceID: nil, error)))
        case nil: break
        }
    }

    /// A handshake unanswered after the request timeout is started again: a KK one with IKpsk2
    /// (the desktop never pinned this phone: its first sealed frame was lost), another as it was
    /// (its reply was lost or forged).
    private func watchHandshake(_ generation: Int, socket: RelayWebSocket) {
        let timeout = configuration.requestTimeout
        Task { [weak self] in
            try? await Task.sleep(for: timeout)
            guard let self else { return }
            let retry = self.state.withLock { state -> Bool in
                guard state.handshakeGeneration == generation, state.socket === socket, state.endToEnd?.isHandshaking == true else { return false }
                if state.endToEnd?.handshakePattern == .kk { state.endToEnd?.markUnpinned() }
                return true
            }
            guard retry else { return }
            self.emit(.endToEnd(.refused(deviceID: nil, .handshakeFailed("no reply within \(timeout); starting another handshake"))))
            self.storeEndToEndKeys()
            await self.startHandshake(socket: socket)
        }
    }

    /// An envelope of an end-to-end session: the opened envelope to apply, or nil when it was a
    /// handshake reply, a rekey, another phone's, held or refused (each handled here).
    private func openEndToEnd(_ envelope: RelayEnvelope, socket: RelayWebSocket, afterHandshake: Bool = false) async -> RelayEnvelope? {
        guard let json = try? JSONValue.parse(envelope.text) else { return nil }
        let (inbound, deviceID) = state.withLock { state -> (PhoneEndToEnd.Inbound?, String) in
            guard var endToEnd = state.endToEnd else { return (nil, "") }
            defer { state.endToEnd = endToEnd }
            return (endToEnd.receive(json), endToEnd.deviceID)
        }
        guard let inbound else { return envelope }
        switch inbound {
        case .opened(let payload):
            var opened = envelope
            opened.payload = payload
            opened.kind = RelayEnvelopeKind(rawValue: payload.type ?? "")
            return opened
        case .secured(let epoch, let pattern):
            await track(envelope, socket: socket)
            storeEndToEndKeys()
            emit(.endToEnd(.secured(deviceID: deviceID, epoch: epoch)))
            if pattern == .ikpsk2, !state.withLock({ $0.viewOnly }) { await sendHello(socket: socket) }
            await releaseHeld(socket: socket)
        case .rekeyed(let epoch):
            await track(envelope, socket: socket)
            storeEndToEndKeys()
            emit(.endToEnd(.rekeyed(epoch: epoch)))
            await releaseHeld(socket: socket)
        case .ignored:
            await track(envelope, socket: socket)
        case .unknownEpoch(let epoch) where afterHandshake:
            // Held for a handshake that came and did not bring the key: not this desktop's epoch.
            emit(.endToEnd(.refused(deviceID: nil, .unknownEpoch(epoch))))
        case .unknownEpoch:
            let handshaking = state.withLock { state -> Bool in
                if state.heldForEpoch.count < Self.maxHeldForEpoch { state.heldForEpoch.append(envelope) }
                return state.endToEnd?.isHandshaking ?? false
            }
            if !handshaking { await startHandshake(socket: socket) }
        case .refused(let error):
            emit(.endToEnd(.refused(deviceID: nil, error)))
        }
        return nil
    }

    /// After IKpsk2: a sealed hello, the first sealed frame, lets the desktop pin this phone now.
    private func sendHello(socket: RelayWebSocket) async {
        let text = state.withLock { state -> String? in
            guard var endToEnd = state.endToEnd, let sessionID = state.credentials?.sessionID else { return nil }
            state.commandSeq += 1
            let shell = EnvelopeShell(sessionID: sessionID, seq: state.commandSeq, timestamp: RelayTimestamp.now())
            guard let sealed = try? endToEnd.seal(["type": .string(PhoneEndToEnd.helloType)], shell: shell) else { return nil }
            endToEnd.markPinned()
            state.endToEnd = endToEnd
            return shell.envelope(payload: sealed)
        }
        guard let text else { return }
        storeEndToEndKeys()
        try? await socket.sendText(text)
    }

    private func releaseHeld(socket: RelayWebSocket) async {
        let held = state.withLock { state in
            defer { state.heldForEpoch = [] }
            return state.heldForEpoch
        }
        for envelope in held { await apply(envelope, socket: socket, afterHandshake: true) }
    }

    /// The keys changed (a pin, an epoch): the credentials to store carry them.
    private func storeEndToEndKeys() {
        let changed = state.withLock { state -> RelayPhoneCredentials? in
            guard var credentials = state.credentials, let keys = state.endToEnd?.keys, credentials.endToEnd != keys else { return nil }
            credentials.endToEnd = keys
            state.credentials = credentials
            return credentials
        }
        if let changed { announce(changed) }
    }

    func received(_ text: String, json: JSONValue?, socket: RelayWebSocket) async {
        guard let json else { return unrecognized(text) }
        if json.type == "relay.scope", let grant = DeviceGrant(fields: json) {
            // A phone allowed to control now can prove its pairing secret (extension 12).
            let hello = state.withLock { state -> Bool in
                state.viewOnly = grant.scope == .view
                guard let endToEnd = state.endToEnd else { return false }
                return !state.viewOnly && endToEnd.isSecured && !endToEnd.keys.pinned
            }
            emit(.grant(grant))
            if hello { await sendHello(socket: socket) }
            return
        }
        if json.type == "relay.resumed" {
            let complete = json["complete"]?.boolValue ?? false
            let buffered = state.withLock { state -> [RelayEnvelope] in
                state.resuming = false
                defer { state.resumeBuffer = [] }
                return state.resumeBuffer
            }
            var applied = Set<UInt64>()
            for envelope in buffered.sorted(by: { $0.seq < $1.seq }) where applied.insert(envelope.seq).inserted {
                await apply(envelope, socket: socket)
            }
            let snapshot = state.withLock { state -> String? in
                state.sequence.awaitingSnapshot = false
                guard !complete, let sessionID = state.credentials?.sessionID else { return nil }
                // Not everything after the phone's last envelope was kept: the desktop's snapshot
                // replaces the state (or, with the desktop away, once it is back).
                state.sequence.awaitingSnapshot = true
                return Self.snapshotRequest(sessionID: sessionID, reason: "resume_incomplete", lastSeq: state.sequence.last)
            }
            emit(.resumed(
                fromSeq: json["fromSeq"]?.uint64Value ?? 0, toSeq: json["toSeq"]?.uint64Value ?? 0, complete: complete))
            if let snapshot { try? await socket.sendText(snapshot) }
            return
        }
        if json.type == "relay.desktop_status", let connected = json["desktopConnected"]?.boolValue {
            emit(.desktopStatus(connected: connected))
            // A desktop that is back may have sent what never arrived (a request to it may have
            // been lost too): ask it for a snapshot.
            let snapshot = state.withLock { state -> String? in
                guard connected, let sessionID = state.credentials?.sessionID else { return nil }
                state.snapshotWhenDesktopOnline = false
                state.sequence.awaitingSnapshot = true
                return Self.snapshotRequest(sessionID: sessionID, reason: "desktop_online", lastSeq: state.sequence.last)
            }
            if connected { await startHandshake(socket: socket) }
            if let snapshot { try? await socket.sendText(snapshot) }
            return
        }
        if let error = RelayErrorMessage(json: json) {
            // A relay without extension 11 calls `relay.resume` an unknown command: from now on
            // this phone asks the desktop for snapshots, starting now.
            let fallback = state.withLock { state -> String? in
                guard state.resuming, error.knownCode == .invalidCommand, let sessionID = state.credentials?.sessionID else { return nil }
                state.resuming = false
                state.resumeSupported = false
                state.sequence.awaitingSnapshot = true
                return Self.snapshotRequest(sessionID: sessionID, reason: "reconnected", lastSeq: state.sequence.last)
            }
            if let fallback {
                for envelope in state.withLock({ state in defer { state.resumeBuffer = [] }; return state.resumeBuffer }) {
                    await apply(envelope, socket: socket)
                }
                try? await socket.sendText(fallback)
                return
            }
            // A snapshot request the relay refused is not pending any more: the next gap asks
            // again, and a desktop that was offline is asked when it returns.
            state.withLock { state in
                switch error.knownCode {
                case .desktopOffline:
                    if state.sequence.awaitingSnapshot { state.snapshotWhenDesktopOnline = true }
                    state.sequence.awaitingSnapshot = false
                case .snapshotRateLimited, .invalidSnapshotRequest:
                    state.sequence.awaitingSnapshot = false
                default:
                    break
                }
            }
            return emit(.relayError(error))
        }
        guard let envelope = RelayEnvelope(text: text, json: json) else { return unrecognized(text) }
        let held = state.withLock { state -> Bool in
            guard state.resuming else { return false }
            state.resumeBuffer.append(envelope)
            return true
        }
        if held { return }
        await apply(envelope, socket: socket)
    }

    /// Opens it on an end-to-end session, follows the envelope's `seq` (a gap asks for a
    /// snapshot), then hands it to the app.
    private func apply(_ envelope: RelayEnvelope, socket: RelayWebSocket, afterHandshake: Bool = false) async {
        var envelope = envelope
        if state.withLock({ $0.endToEnd != nil }) {
            guard let opened = await openEndToEnd(envelope, socket: socket, afterHandshake: afterHandshake) else { return }
            envelope = opened
        }
        await track(envelope, socket: socket, emitting: true)
    }

    /// Follows the envelope's `seq` (a gap asks for a snapshot); `emitting`: the app gets the
    /// envelope (not a handshake reply or a rekey).
    private func track(_ envelope: RelayEnvelope, socket: RelayWebSocket, emitting: Bool = false) async {
        let (outcome, snapshot) = state.withLock { state -> (DesktopSequence.Outcome, String?) in
            let outcome = state.sequence.observe(seq: envelope.seq, isSnapshot: envelope.kind == .snapshot)
            guard case .gap(let expected, _) = outcome, !state.sequence.awaitingSnapshot,
                let sessionID = state.credentials?.sessionID
            else { return (outcome, nil) }
            state.sequence.awaitingSnapshot = true
            return (outcome, Self.snapshotRequest(sessionID: sessionID, reason: "sequence_gap", lastSeq: expected - 1))
        }
        if emitting { emit(.envelope(envelope)) }
        if case .gap(let expected, let received) = outcome { emit(.sequenceGap(expected: expected, received: received)) }
        if let snapshot { try? await socket.sendText(snapshot) }
    }

    private func emit(_ event: RelayPhoneEvent) { continuation.yield(event) }

    /// A desktop frame that is neither a relay message nor an envelope: handed to the app, unless
    /// the session is end-to-end, where nothing unsealed from the desktop is trusted.
    private func unrecognized(_ text: String) {
        if state.withLock({ $0.endToEnd != nil }) {
            return emit(.endToEnd(.refused(deviceID: nil, .plaintextRefused("a desktop frame that is not an envelope"))))
        }
        emit(.unrecognized(text))
    }

    func disconnected(_ disconnection: RelayDisconnection) {
        state.withLock { $0.socket = nil }
        emit(.disconnected(disconnection))
    }

    private func announce(_ credentials: RelayPhoneCredentials) {
        onCredentialsChanged?(credentials)
        emit(.credentialsChanged(credentials))
    }

    private static func resumeRequest(sessionID: String, lastSeq: UInt64) -> String {
        JSONValue.object(["type": "relay.resume", "sessionID": .string(sessionID), "lastSeq": .int(lastSeq)]).serialized
    }

    private static func snapshotRequest(sessionID: String, reason: String?, lastSeq: UInt64?) -> String {
        var request: [String: JSONValue] = ["type": "relay.snapshot_request", "sessionID": .string(sessionID)]
        if let reason { request["reason"] = .string(reason) }
        if let lastSeq { request["lastSeq"] = .int(lastSeq) }
        return JSONValue.object(request).serialized
    }
}

extension RelayPhoneClient: SessionRole {}

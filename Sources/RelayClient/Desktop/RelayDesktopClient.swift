// The desktop side of a session for apps: start pairing, approve phones, stay connected, send
// envelopes, manage devices.

import Foundation
import RelayProtocol
import Synchronization

/// The desktop that owns a session on the relay.
///
/// ```swift
/// let desktop = RelayDesktopClient(relayURL: "https://relay.example", identity: stored ?? .generate())
/// let link = try await desktop.startPairing()     // show link.link(page:) as a QR code
/// async let end = desktop.run()
/// for await event in desktop.events {
///     if case .pairingRequest(let request) = event { try await desktop.decide(request, approve: userSaidYes) }
/// }
/// ```
///
/// ``run()`` keeps the desktop's WebSocket up, reconnecting like the phone does; envelopes sent
/// with ``send(_:payload:)`` are numbered in one sequence across reconnects, so phones notice what
/// they missed. The desktop token never rotates: store ``identity`` once.
public final class RelayDesktopClient: Sendable {
    /// The relay's base URL (`https://…`); also the `relay` of the join links.
    public let relayURL: String
    /// The session id and token (store them to keep the session across restarts).
    public let identity: RelayDesktopIdentity
    /// How the client connects.
    public let configuration: RelayClientConfiguration
    /// Everything that happens on the connection, in order, for one consumer. It finishes when
    /// ``run()`` returns.
    public let events: AsyncStream<RelayDesktopEvent>

    private struct State {
        var wsURL: String?
        var socket: RelayWebSocket?
        var nextSeq: UInt64
        var hasRun = false
        /// Extension 12: the session's end-to-end state, or why the stored keys are unusable.
        var endToEnd: Result<DesktopEndToEnd, EndToEndError>?
    }

    private let state: Mutex<State>
    private let continuation: AsyncStream<RelayDesktopEvent>.Continuation
    private let http: RelayHTTPClient
    private let closeSignal = CloseSignal()
    private let onEndToEndKeysChanged: (@Sendable (RelayDesktopEndToEndKeys) -> Void)?

    /// A desktop for the relay at `relayURL` with `identity` (a new one, or the one stored).
    ///
    /// - Parameters:
    ///   - firstSeq: The `seq` of the first envelope sent; a desktop that restarts may continue
    ///     its numbering, or start again at 1 (phones take a lower `seq` as a restart).
    ///   - endToEnd: Extension 12: the desktop's keys (``RelayDesktopEndToEndKeys/generate()`` the
    ///     first time, then what the callback stored). With them, join links carry `e2e=1`, every
    ///     envelope is sealed, and phones' plaintext commands are refused. Each client begins a new
    ///     content-key epoch, so `firstSeq` may start again safely.
    ///   - onEndToEndKeysChanged: Called with the keys to store whenever they change (an epoch
    ///     begun, a phone pinned or revoked, a grant changed), starting with this initializer.
    public init(
        relayURL: String, identity: RelayDesktopIdentity, configuration: RelayClientConfiguration = RelayClientConfiguration(),
        firstSeq: UInt64 = 1, endToEnd: RelayDesktopEndToEndKeys? = nil,
        onEndToEndKeysChanged: (@Sendable (RelayDesktopEndToEndKeys) -> Void)? = nil
    ) {
        self.relayURL = relayURL
        self.identity = identity
        self.configuration = configuration
        self.http = RelayHTTPClient(baseURL: relayURL, tls: configuration.tls, eventLoopGroup: configuration.eventLoopGroup)
        self.onEndToEndKeysChanged = onEndToEndKeysChanged
        var state = State(wsURL: nil, nextSeq: firstSeq)
        state.endToEnd = endToEnd.map { keys in
            do { return .success(try DesktopEndToEnd(keys: keys, sessionID: identity.sessionID)) } catch let error as EndToEndError {
                return .failure(error)
            } catch {
                return .failure(.invalidKey("\(error)"))
            }
        }
        self.state = Mutex(state)
        (events, continuation) = AsyncStream.makeStream(of: RelayDesktopEvent.self)
        if case .success(let endToEnd)? = state.endToEnd { onEndToEndKeysChanged?(endToEnd.keys) }
    }

    /// Whether the session is end-to-end encrypted (the client was given keys).
    public var isEndToEnd: Bool { state.withLock { $0.endToEnd != nil } }

    /// The end-to-end keys as they are now (store them), nil without end-to-end encryption.
    public var endToEndKeys: RelayDesktopEndToEndKeys? {
        state.withLock { state in if case .success(let endToEnd)? = state.endToEnd { endToEnd.keys } else { nil } }
    }

    // MARK: Pairing and devices (HTTP)

    /// `POST /pair/start`: registers the session with a new one-time join token valid for
    /// `lifetime`, and returns the link to show as a QR code. Starting again with the same
    /// identity replaces the session on the relay (its phones are dropped).
    ///
    /// - Parameter idleTimeoutSeconds: How long the session may sit unused (the relay clamps it to
    ///   1 min … 24 h; default 30 min).
    /// - Throws: ``RelayClientError/requestRefused(operation:status:code:message:)`` and transport errors.
    public func startPairing(lifetime: Duration = .seconds(120), idleTimeoutSeconds: Int? = nil) async throws -> RelayJoinLink {
        let joinToken = RelayTokens.token()
        var body = credentialsBody()
        body["joinToken"] = .string(joinToken)
        body["joinTokenExpiresAt"] = .string(Self.expiry(after: lifetime))
        if let idleTimeoutSeconds { body["idleTimeoutSeconds"] = .int(idleTimeoutSeconds) }
        let json = try await post("/pair/start", body)
        if let wsURL = json["wsURL"]?.stringValue { state.withLock { $0.wsURL = wsURL } }
        return try RelayJoinLink(sessionID: identity.sessionID, joinToken: joinToken, relayBaseURL: relayURL, endToEnd: try newPairingSecret())
    }

    /// `POST /pair/refresh`: a new join token for adding another phone; paired phones and the
    /// socket carry on.
    public func refreshJoinToken(lifetime: Duration = .seconds(120)) async throws -> RelayJoinLink {
        let joinToken = RelayTokens.token()
        var body = credentialsBody()
        body["joinToken"] = .string(joinToken)
        body["joinTokenExpiresAt"] = .string(Self.expiry(after: lifetime))
        _ = try await post("/pair/refresh", body)
        return try RelayJoinLink(sessionID: identity.sessionID, joinToken: joinToken, relayBaseURL: relayURL, endToEnd: try newPairingSecret())
    }

    /// A new pairing secret for the link about to be shown (nil without end-to-end encryption).
    private func newPairingSecret() throws -> RelayEndToEndLink? {
        try state.withLock { state throws -> RelayEndToEndLink? in
            switch state.endToEnd {
            case nil: return nil
            case .failure(let error)?: throw error
            case .success(var endToEnd)?:
                defer { state.endToEnd = .success(endToEnd) }
                return try endToEnd.newPairingSecret()
            }
        }
    }

    /// Runs `change` on the end-to-end state, stores the keys if they changed; nil without it.
    private func withEndToEnd<T>(_ change: (inout DesktopEndToEnd) throws -> T) rethrows -> T? {
        let (result, keys) = try state.withLock { state throws -> (T?, RelayDesktopEndToEndKeys?) in
            guard case .success(var endToEnd)? = state.endToEnd else { return (nil, nil) }
            let before = endToEnd.keys
            defer { state.endToEnd = .success(endToEnd) }
            let result = try change(&endToEnd)
            return (result, endToEnd.keys != before ? endToEnd.keys : nil)
        }
        if let keys { onEndToEndKeysChanged?(keys) }
        return result
    }

    /// `POST /devices/list`: the phones paired with the session.
    public func listDevices() async throws -> [RelayDevice] {
        let json = try await post("/devices/list", credentialsBody())
        return (json["devices"]?.arrayValue ?? []).compactMap(RelayDevice.init(json:))
    }

    /// `POST /devices/revoke`: the device's token stops working and its sockets close with
    /// `device_revoked`, on every node.
    public func revokeDevice(_ deviceID: String) async throws {
        var body = credentialsBody()
        body["deviceID"] = .string(deviceID)
        _ = try await post("/devices/revoke", body)
        // Extension 12: a new epoch whose key the revoked phone never gets; the others get it now
        // (or, offline, in their next handshake).
        guard let remaining = withEndToEnd({ $0.revoke(deviceID) }) else { return }
        for phone in remaining {
            _ = try? await sendEnvelope { shell in try self.withEndToEnd { try $0.rekey(for: phone, shell: shell) } ?? [:] }
        }
    }

    /// `POST /pair/stop`: ends the session on every node; every socket, this desktop's too, closes
    /// with `stopped_by_desktop`, and ``run()`` returns ``RelayConnectionEnd/ended(reason:)``.
    public func stopSession() async throws {
        _ = try await post("/pair/stop", credentialsBody())
    }

    // MARK: The connection

    /// Keeps the desktop connected until the session ends, ``close()`` is called, the task is
    /// cancelled, or the reconnect policy gives up; then finishes ``events``. Call it once (a second
    /// call returns `.closed` at once; connecting again takes a new client), after
    /// ``startPairing(lifetime:idleTimeoutSeconds:)`` or with an identity the relay knows.
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

    /// Whether a connection is authenticated now.
    public var isConnected: Bool { state.withLock { $0.socket != nil } }

    /// Approves or denies a phone's request to join.
    ///
    /// With a `grant` (extension 10), an approved phone gets only that access: `view` to watch,
    /// `allowedCommands` to limit what it may send, an end after which its sockets close with
    /// `device_expired`. Without one it gets the contract's full access (or the relay's
    /// `DEFAULT_DEVICE_SCOPE`). A relay that cannot use the grant answers with a `relay.error`
    /// `invalid_scope` (an ``RelayDesktopEvent/unrecognized(_:)`` event), and the request stays
    /// pending.
    public func decide(_ request: RelayPairingRequest, approve: Bool, grant: DeviceGrant? = nil) async throws {
        var decision: [String: JSONValue] = [
            "type": "relay.pair_decision", "sessionID": .string(identity.sessionID), "requestID": .string(request.requestID),
            "approved": .bool(approve),
        ]
        if approve, let grant { for field in grant.wireFields { decision[field.key] = field.value } }
        if approve { withEndToEnd { $0.approved(grant: grant) } }
        try await currentSocket().sendText(JSONValue.object(decision).serialized)
    }

    /// `POST /devices/scope` (extension 10): replaces what a paired phone may do, on every node
    /// within a second; its open sockets receive `relay.scope`. Returns the grant the relay stored.
    ///
    /// - Throws: ``RelayClientError/requestRefused(operation:status:code:message:)`` with
    ///   `invalid_scope` for a grant the relay cannot use (an end in the past), `device_not_found`
    ///   for an unknown device.
    @discardableResult
    public func setScope(of deviceID: String, to grant: DeviceGrant) async throws -> DeviceGrant {
        var body = credentialsBody()
        body["deviceID"] = .string(deviceID)
        for field in grant.wireFields { body[field.key] = field.value }
        let json = try await post("/devices/scope", body)
        let stored = DeviceGrant(fields: json) ?? grant
        withEndToEnd { $0.setGrant(stored, of: deviceID) }
        return stored
    }

    /// Sends an envelope of `kind` with `payload` to every connected phone and returns its `seq`.
    ///
    /// - Throws: ``RelayClientError/notConnected(_:)`` between connections (the `seq` is not used).
    /// On an end-to-end session the payload is sealed under the epoch's content key.
    @discardableResult
    public func send(_ kind: RelayEnvelopeKind, payload: [String: JSONValue] = [:]) async throws -> UInt64 {
        var body = payload
        body["type"] = .string(kind.rawValue)
        let plaintext = JSONValue.object(body)
        return try await sendEnvelope { shell in try self.withEndToEnd { try $0.seal(plaintext, shell: shell) } ?? plaintext }
    }

    /// Sends an envelope with the next `seq`, its payload made for its shell.
    @discardableResult
    private func sendEnvelope(_ payload: (EnvelopeShell) throws -> JSONValue) async throws -> UInt64 {
        let (socket, shell) = try state.withLock { state throws(RelayClientError) in
            guard let socket = state.socket else {
                throw .notConnected("the desktop is not connected to the relay; the envelope was not sent")
            }
            defer { state.nextSeq += 1 }
            return (socket, EnvelopeShell(sessionID: identity.sessionID, seq: state.nextSeq, timestamp: RelayTimestamp.now()))
        }
        try await socket.sendText(shell.envelope(payload: try payload(shell)))
        return shell.seq
    }

    /// Sends `text` as it is (tests inject tampered and replayed frames).
    package func sendRawText(_ text: String) async throws {
        try await currentSocket().sendText(text)
    }

    /// Ends the connection (close 1000) and stops reconnecting; ``run()`` then returns `.closed`.
    /// The session stays on the relay (``stopSession()`` ends it).
    public func close() async {
        closeSignal.close()
        let socket = state.withLock { $0.socket }
        await socket?.close()
    }

    // MARK: Internals

    private func currentSocket() throws(RelayClientError) -> RelayWebSocket {
        guard let socket = state.withLock({ $0.socket }) else {
            throw .notConnected("the desktop is not connected to the relay")
        }
        return socket
    }

    private func credentialsBody() -> [String: JSONValue] {
        ["sessionID": .string(identity.sessionID), "desktopSessionToken": .string(identity.desktopSessionToken)]
    }

    private func post(_ path: String, _ body: [String: JSONValue]) async throws -> JSONValue {
        let response = try await http.postJSON(path: path, body: .object(body), timeout: configuration.requestTimeout)
        return try response.requireSuccess(operation: "POST \(path)")
    }

    private static func expiry(after lifetime: Duration) -> String {
        let seconds = Double(lifetime.components.seconds) + Double(lifetime.components.attoseconds) / 1e18
        return RelayTimestamp.rfc3339(Date().addingTimeInterval(seconds))
    }

    func connectionTarget() throws -> (url: String, token: String, headers: [(String, String)]) {
        guard let url = state.withLock({ $0.wsURL }) ?? RelayEndpoint.defaultWebSocketURL(baseURL: relayURL) else {
            throw RelayClientError.invalidURL(relayURL)
        }
        return (url, identity.desktopSessionToken, [])
    }

    func authenticated(_ authOK: JSONValue, socket: RelayWebSocket, isReconnect: Bool) async {
        state.withLock { $0.socket = socket }
        emit(.connected)
    }

    func received(_ text: String, json: JSONValue?, socket: RelayWebSocket) async {
        guard let json else { return emit(.unrecognized(text)) }
        switch json.type {
        case "relay.pair_request":
            if let request = RelayPairingRequest(json: json) { return emit(.pairingRequest(request)) }
        case "relay.pair_result":
            if let requestID = json["requestID"]?.stringValue {
                return emit(.pairingResult(requestID: requestID, approved: json["approved"]?.boolValue ?? false))
            }
        case "relay.device_count":
            if let count = json["connectedDeviceCount"]?.intValue { return emit(.deviceCount(count)) }
        case "relay.snapshot_request":
            if let request = RelaySnapshotRequest(json: json) { return emit(.snapshotRequest(request)) }
        default:
            if isEndToEnd { return await receivedEndToEnd(json, text: text) }
            if let command = RelayIncomingCommand(json: json) { return emit(.command(command)) }
        }
        emit(.unrecognized(text))
    }

    /// A phone's frame on an end-to-end session: a handshake, a sealed command, or refused
    /// plaintext.
    private func receivedEndToEnd(_ json: JSONValue, text: String) async {
        let deviceID = json["relayDeviceID"]?.stringValue
        let outcomes: [DesktopEndToEnd.Outcome]
        switch json["payload"]?.type {
        case "noise": outcomes = withEndToEnd { $0.handshake(json) } ?? []
        case "sealed": outcomes = withEndToEnd { $0.open(json) } ?? []
        case "command":
            outcomes = [.refused(deviceID: deviceID, .plaintextRefused("a plaintext command"))]
        default:
            return emit(.unrecognized(text))
        }
        for outcome in outcomes {
            switch outcome {
            case .reply(let payload):
                do { try await sendEnvelope { _ in payload } } catch {
                    emit(.endToEnd(.refused(deviceID: deviceID, .handshakeFailed("the reply could not be sent: \(error)"))))
                }
            case .secured(let deviceID, _): emit(.endToEnd(.secured(deviceID: deviceID, epoch: nil)))
            case .pinned(let deviceID): emit(.endToEnd(.pinned(deviceID: deviceID)))
            case .command(let envelope):
                if let command = RelayIncomingCommand(json: envelope) { emit(.command(command)) }
            case .refused(let deviceID, let error): emit(.endToEnd(.refused(deviceID: deviceID, error)))
            case .commandRefused(let deviceID, let error):
                emit(.endToEnd(.commandRefused(deviceID: deviceID, code: error.code.rawValue, message: error.message)))
            }
        }
    }

    private func emit(_ event: RelayDesktopEvent) { continuation.yield(event) }

    func disconnected(_ disconnection: RelayDisconnection) {
        state.withLock { $0.socket = nil }
        emit(.disconnected(disconnection))
    }
}

extension RelayDesktopClient: SessionRole {}

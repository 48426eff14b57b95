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
    }

    private let state: Mutex<State>
    private let continuation: AsyncStream<RelayDesktopEvent>.Continuation
    private let http: RelayHTTPClient
    private let closeSignal = CloseSignal()

    /// A desktop for the relay at `relayURL` with `identity` (a new one, or the one stored).
    ///
    /// - Parameter firstSeq: The `seq` of the first envelope sent; a desktop that restarts may
    ///   continue its numbering, or start again at 1 (phones take a lower `seq` as a restart).
    public init(
        relayURL: String, identity: RelayDesktopIdentity, configuration: RelayClientConfiguration = RelayClientConfiguration(),
        firstSeq: UInt64 = 1
    ) {
        self.relayURL = relayURL
        self.identity = identity
        self.configuration = configuration
        self.http = RelayHTTPClient(baseURL: relayURL, tls: configuration.tls, eventLoopGroup: configuration.eventLoopGroup)
        self.state = Mutex(State(wsURL: nil, nextSeq: firstSeq))
        (events, continuation) = AsyncStream.makeStream(of: RelayDesktopEvent.self)
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
        return try RelayJoinLink(sessionID: identity.sessionID, joinToken: joinToken, relayBaseURL: relayURL)
    }

    /// `POST /pair/refresh`: a new join token for adding another phone; paired phones and the
    /// socket carry on.
    public func refreshJoinToken(lifetime: Duration = .seconds(120)) async throws -> RelayJoinLink {
        let joinToken = RelayTokens.token()
        var body = credentialsBody()
        body["joinToken"] = .string(joinToken)
        body["joinTokenExpiresAt"] = .string(Self.expiry(after: lifetime))
        _ = try await post("/pair/refresh", body)
        return try RelayJoinLink(sessionID: identity.sessionID, joinToken: joinToken, relayBaseURL: relayURL)
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
    /// `DEFAULT_DEVICE_SCOPE`). A relay that cannot use the grant answers with a
    /// ``RelayDesktopEvent/relayError(_:)`` `invalid_scope`, and the request stays pending.
    public func decide(_ request: RelayPairingRequest, approve: Bool, grant: DeviceGrant? = nil) async throws {
        var decision: [String: JSONValue] = [
            "type": "relay.pair_decision", "sessionID": .string(identity.sessionID), "requestID": .string(request.requestID),
            "approved": .bool(approve),
        ]
        if approve, let grant { for field in grant.wireFields { decision[field.key] = field.value } }
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
        return DeviceGrant(fields: json) ?? grant
    }

    /// Sends an envelope of `kind` with `payload` to every connected phone and returns its `seq`.
    ///
    /// - Throws: ``RelayClientError/notConnected(_:)`` between connections (the `seq` is not used).
    @discardableResult
    public func send(_ kind: RelayEnvelopeKind, payload: [String: JSONValue] = [:]) async throws -> UInt64 {
        let (socket, seq) = try state.withLock { state throws(RelayClientError) in
            guard let socket = state.socket else {
                throw .notConnected("the desktop is not connected to the relay; the envelope was not sent")
            }
            defer { state.nextSeq += 1 }
            return (socket, state.nextSeq)
        }
        try await socket.sendText(RelayEnvelope.serialize(sessionID: identity.sessionID, seq: seq, kind: kind, payload: payload))
        return seq
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
            if let command = RelayIncomingCommand(json: json) { return emit(.command(command)) }
        }
        emit(.unrecognized(text))
    }

    private func emit(_ event: RelayDesktopEvent) { continuation.yield(event) }

    func disconnected(_ disconnection: RelayDisconnection) {
        state.withLock { $0.socket = nil }
        emit(.disconnected(disconnection))
    }
}

extension RelayDesktopClient: SessionRole {}

// The phone role (PROTOCOL §2.6, §3, §4.2–§4.4, §4.7): joins, authenticates with rotating tokens, sends commands.

import NIOCore
import NIOPosix
import RelayProtocol
import Synchronization

/// The phone (mobile PWA) side of a relay session.
///
/// Every successful ``connect(url:token:authTimeout:autoReplyPings:receiveBufferSize:)`` stores the `nextDeviceSessionToken` of the
/// `auth_ok` as the token for the next connection and keeps the one just used in ``previousToken``
/// (a grace token, PROTOCOL §4.4). Mutable state sits behind a `Mutex`; the socket has a single reader.
package final class RelayPhone: Sendable {
    /// The relay's HTTP base URL.
    package let baseURL: String
    /// `Origin` sent on HTTP and WebSocket requests (`nil` sends none).
    package let origin: String?
    /// The HTTP client used for every call; use it for raw requests.
    package let http: RelayHTTPClient
    /// The event loop group the sockets run on.
    package let eventLoopGroup: any EventLoopGroup

    private struct State {
        var sessionID: String?
        var deviceID: String?
        var token: String?
        var previousToken: String?
        var wsURL: String?
        var socket: RelayWebSocket?
        var lastSeq: UInt64 = 0
    }

    private let state: Mutex<State>
    private let onCredentialsChanged: (@Sendable (RelayPhoneCredentials) -> Void)?

    /// Creates a phone. Credentials are normally filled in by ``join(sessionID:joinToken:deviceName:)``;
    /// pass them here to resume a phone that paired earlier.
    package init(
        baseURL: String,
        origin: String? = "http://localhost:4173",
        sessionID: String? = nil,
        deviceID: String? = nil,
        deviceSessionToken: String? = nil,
        wsURL: String? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onCredentialsChanged: (@Sendable (RelayPhoneCredentials) -> Void)? = nil
    ) {
        self.baseURL = baseURL
        self.origin = origin
        self.eventLoopGroup = eventLoopGroup
        self.http = RelayHTTPClient(baseURL: baseURL, eventLoopGroup: eventLoopGroup)
        self.state = Mutex(State(sessionID: sessionID, deviceID: deviceID, token: deviceSessionToken, wsURL: wsURL))
        self.onCredentialsChanged = onCredentialsChanged
    }

    /// A phone resumed from the credentials its app stored; `onCredentialsChanged` is called with
    /// the new credentials after every join and every connection that rotated the token, so the
    /// app can store them before it uses the socket.
    package convenience init(
        baseURL: String,
        credentials: RelayPhoneCredentials,
        origin: String?,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onCredentialsChanged: (@Sendable (RelayPhoneCredentials) -> Void)? = nil
    ) {
        self.init(
            baseURL: baseURL, origin: origin, sessionID: credentials.sessionID, deviceID: credentials.deviceID,
            deviceSessionToken: credentials.deviceSessionToken, wsURL: credentials.wsURL, eventLoopGroup: eventLoopGroup,
            onCredentialsChanged: onCredentialsChanged)
    }

    /// The credentials to store now, once the phone has joined.
    package var credentials: RelayPhoneCredentials? {
        state.withLock { Self.credentials(of: $0) }
    }

    private static func credentials(of state: State) -> RelayPhoneCredentials? {
        guard let sessionID = state.sessionID, let deviceID = state.deviceID, let token = state.token else { return nil }
        return RelayPhoneCredentials(sessionID: sessionID, deviceID: deviceID, deviceSessionToken: token, wsURL: state.wsURL)
    }

    /// The session id of the last successful join.
    package var sessionID: String? { state.withLock { $0.sessionID } }
    /// The device id issued by the last successful join.
    package var deviceID: String? { state.withLock { $0.deviceID } }
    /// The token the next ``connect(url:token:authTimeout:autoReplyPings:receiveBufferSize:)`` will present.
    package var deviceSessionToken: String? { state.withLock { $0.token } }
    /// The token presented by the last successful connect (still valid during the grace period).
    package var previousToken: String? { state.withLock { $0.previousToken } }
    /// The session WebSocket URL from the join response.
    package var wsURL: String? { state.withLock { $0.wsURL } }
    /// The last `seq` sent on the current connection (0 right after connecting).
    package var lastSeq: UInt64 { state.withLock { $0.lastSeq } }
    /// The socket opened by the last successful connect, if any.
    package var currentSocket: RelayWebSocket? { state.withLock { $0.socket } }

    /// The socket opened by the last successful connect.
    ///
    /// - Throws: ``RelayClientError/notReady(_:)`` before the first successful connect.
    package var socket: RelayWebSocket {
        get throws {
            guard let socket = currentSocket else { throw RelayClientError.notReady("phone is not connected") }
            return socket
        }
    }

    private var originHeaders: [(String, String)] { origin.map { [("Origin", $0)] } ?? [] }

    // MARK: HTTP

    /// `POST /pair/join` (long-polls until the desktop decides). A 200 stores the session id,
    /// `deviceID`, `deviceSessionToken` and `wsURL`.
    @discardableResult
    package func join(
        sessionID: String,
        joinToken: String,
        deviceName: String? = nil,
        timeout: Duration = .seconds(60)
    ) async throws -> RelayHTTPResponse {
        var body: [String: JSONValue] = ["sessionID": .string(sessionID), "joinToken": .string(joinToken)]
        if let deviceName { body["deviceName"] = .string(deviceName) }
        let response = try await http.postJSON(path: "/pair/join", body: .object(body), headers: originHeaders, timeout: timeout)
        if response.status == 200, let json = try? response.json() {
            let stored = state.withLock { state in
                state.sessionID = json["sessionID"]?.stringValue ?? sessionID
                state.deviceID = json["deviceID"]?.stringValue
                state.token = json["deviceSessionToken"]?.stringValue
                state.previousToken = nil
                state.wsURL = json["wsURL"]?.stringValue
                return Self.credentials(of: state)
            }
            if let stored { onCredentialsChanged?(stored) }
        }
        return response
    }

    // MARK: WebSocket

    /// Opens a WebSocket to `url` (default: the stored `wsURL`) with this phone's `Origin`, without
    /// authenticating.
    ///
    /// - Parameters:
    ///   - autoReplyPings: See ``RelayWebSocket/connect(to:headers:tls:eventLoopGroup:maxFrameSize:autoReplyPings:receiveBufferSize:connectTimeout:)``;
    ///     `false` lets a test provoke `heartbeat_timeout`.
    ///   - receiveBufferSize: `SO_RCVBUF` for the socket; small values make ``RelayWebSocket/pauseReading()``
    ///     back the relay up quickly (slow-consumer tests).
    package func openSocket(url: String? = nil, autoReplyPings: Bool = true, receiveBufferSize: Int? = nil) async throws -> RelayWebSocket {
        guard let target = url ?? wsURL else { throw RelayClientError.notReady("phone has no wsURL; join first") }
        return try await RelayWebSocket.connect(
            to: target,
            headers: originHeaders,
            eventLoopGroup: eventLoopGroup,
            autoReplyPings: autoReplyPings,
            receiveBufferSize: receiveBufferSize
        )
    }

    /// Opens the session WebSocket, authenticates with `token` (default: the stored token) and
    /// returns `auth_ok`. On success the socket becomes ``socket``, the seq counter restarts at 0,
    /// `nextDeviceSessionToken` becomes ``deviceSessionToken`` and the token used becomes
    /// ``previousToken``. A previous socket is left open.
    ///
    /// - Throws: ``RelayClientError/authRejected(role:received:)`` when the first event is not
    ///   `auth_ok` (the socket is closed and the stored tokens are unchanged).
    ///
    /// `autoReplyPings` and `receiveBufferSize` are passed to ``openSocket(url:autoReplyPings:receiveBufferSize:)``.
    @discardableResult
    package func connect(
        url: String? = nil,
        token: String? = nil,
        authTimeout: Duration = .seconds(10),
        autoReplyPings: Bool = true,
        receiveBufferSize: Int? = nil
    ) async throws -> JSONValue {
        guard let presented = token ?? deviceSessionToken else {
            throw RelayClientError.notReady("phone has no device session token; join first")
        }
        let socket = try await openSocket(url: url, autoReplyPings: autoReplyPings, receiveBufferSize: receiveBufferSize)
        do {
            let auth: JSONValue = ["type": "relay.auth", "token": .string(presented)]
            try await socket.sendText(auth.serialized)
            let first = try await RelayRoles.firstFrame(socket, role: "mobile", timeout: authTimeout)
            let rotated = state.withLock { state -> RelayPhoneCredentials? in
                state.socket = socket
                state.lastSeq = 0
                state.previousToken = presented
                let before = state.token
                if let next = first["nextDeviceSessionToken"]?.stringValue { state.token = next }
                if let deviceID = first["deviceID"]?.stringValue { state.deviceID = deviceID }
                if let sessionID = first["sessionID"]?.stringValue { state.sessionID = sessionID }
                return state.token != before ? Self.credentials(of: state) : nil
            }
            if let rotated { onCredentialsChanged?(rotated) }
            return first
        } catch {
            await socket.close()
            throw error
        }
    }

    /// Closes the current socket, then connects again with the rotated token.
    @discardableResult
    package func reconnect(authTimeout: Duration = .seconds(10)) async throws -> JSONValue {
        await disconnect()
        return try await connect(authTimeout: authTimeout)
    }

    /// Closes the current socket (close frame 1000, then TCP) and forgets it.
    package func disconnect() async {
        let socket = state.withLock { state -> RelayWebSocket? in
            defer { state.socket = nil }
            return state.socket
        }
        await socket?.close()
    }

    /// Sends the canonical command envelope
    /// `{"schemaVersion":2,"sessionID":…,"seq":n,"timestamp":…,"payload":{"type":"command","payload":{"name":…,"commandID":…,…fields}}}`.
    ///
    /// - Parameters:
    ///   - commandID: Defaults to `cmd-<seq>`.
    ///   - fields: Extra command members (`threadID`, `text`, …), merged into the command object.
    ///   - seq: Defaults to one more than the highest seq sent on this connection; an explicit value
    ///     is sent as given (to test replays) and raises the counter if higher.
    ///   - includeTimestamp: Whether to include `timestamp` (the load harness omits it).
    /// - Returns: The seq sent.
    @discardableResult
    package func sendCommand(
        name: String,
        commandID: String? = nil,
        fields: [String: JSONValue] = [:],
        seq: UInt64? = nil,
        includeTimestamp: Bool = true
    ) async throws -> UInt64 {
        let socket = try self.socket
        let (sessionID, used) = state.withLock { state -> (String?, UInt64) in
            let used = seq ?? state.lastSeq + 1
            state.lastSeq = max(state.lastSeq, used)
            return (state.sessionID, used)
        }
        guard let sessionID else { throw RelayClientError.notReady("phone has no session id") }
        try await socket.sendText(
            RelayCommand.envelope(
                sessionID: sessionID, seq: used, name: name, commandID: commandID ?? "cmd-\(used)", fields: fields,
                includeTimestamp: includeTimestamp))
        return used
    }

    /// Sends `{"type":"relay.snapshot_request","sessionID":…}` with the optional `reason` and `lastSeq`.
    package func requestSnapshot(reason: String? = nil, lastSeq: UInt64? = nil) async throws {
        let socket = try self.socket
        guard let sessionID else { throw RelayClientError.notReady("phone has no session id") }
        var request: [String: JSONValue] = ["type": "relay.snapshot_request", "sessionID": .string(sessionID)]
        if let reason { request["reason"] = .string(reason) }
        if let lastSeq { request["lastSeq"] = .int(lastSeq) }
        try await socket.sendText(JSONValue.object(request).serialized)
    }
}

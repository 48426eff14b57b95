// The desktop role (PROTOCOL §2.5–§2.10, §3, §4.2): owns a session, approves phones, sends envelopes.

import Foundation
import NIOCore
import NIOPosix
import RelayProtocol
import Synchronization

/// A `relay.pair_request` received by the desktop.
package struct RelayPairRequest: Sendable {
    /// The `requestID` to answer with ``RelayDesktop/decide(requestID:approved:)``.
    package let requestID: String
    /// The whole frame.
    package let frame: JSONValue
    /// Text frames skipped while waiting for it, in order.
    package let skippedFrames: [String]

    /// The `deviceName` the phone asked with, if any.
    package var deviceName: String? { frame["deviceName"]?.stringValue }
}

/// The desktop side of a relay session.
///
/// Thin and explicit: each method is one HTTP call or one WebSocket exchange of the protocol.
/// HTTP calls return the response whatever its status (tests assert on it); only the state they
/// record (`wsURL`, the join token) depends on a 200. Mutable state sits behind a `Mutex`, so a
/// desktop can be shared between tasks; its socket still has a single reader.
package final class RelayDesktop: Sendable {
    /// The relay's HTTP base URL.
    package let baseURL: String
    /// The session id.
    package let sessionID: String
    /// The desktop session token (never rotates).
    package let desktopSessionToken: String
    /// `Origin` sent on HTTP and WebSocket requests; `nil` (the default) sends none, like the app.
    package let origin: String?
    /// The HTTP client used for every call; use it for raw requests.
    package let http: RelayHTTPClient
    /// The event loop group the sockets run on.
    package let eventLoopGroup: any EventLoopGroup

    private struct State {
        var joinToken: String
        var joinTokenExpiresAt: Date
        var wsURL: String?
        var socket: RelayWebSocket?
    }

    private let state: Mutex<State>

    /// Creates a desktop; identifiers left `nil` are generated like the reference clients do
    /// (session id from 16 random bytes, tokens from 32, base64url without padding).
    ///
    /// - Parameters:
    ///   - joinTokenExpiresAt: Expiry sent to `/pair/start`; defaults to now + 120 s.
    ///   - wsURL: A WebSocket URL to use before (or instead of) `/pair/start` returns one.
    package init(
        baseURL: String,
        sessionID: String? = nil,
        joinToken: String? = nil,
        desktopSessionToken: String? = nil,
        joinTokenExpiresAt: Date? = nil,
        origin: String? = nil,
        wsURL: String? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.baseURL = baseURL
        self.sessionID = sessionID ?? RelayTokens.sessionID()
        self.desktopSessionToken = desktopSessionToken ?? RelayTokens.token()
        self.origin = origin
        self.eventLoopGroup = eventLoopGroup
        self.http = RelayHTTPClient(baseURL: baseURL, eventLoopGroup: eventLoopGroup)
        self.state = Mutex(
            State(
                joinToken: joinToken ?? RelayTokens.token(),
                joinTokenExpiresAt: joinTokenExpiresAt ?? Date().addingTimeInterval(120),
                wsURL: wsURL,
                socket: nil
            )
        )
    }

    /// The current join token (replaced by a successful ``refreshJoinToken(newJoinToken:expiresAt:schemaVersion:)``).
    package var joinToken: String { state.withLock { $0.joinToken } }

    /// The current join token expiry.
    package var joinTokenExpiresAt: Date { state.withLock { $0.joinTokenExpiresAt } }

    /// The session WebSocket URL recorded from `/pair/start` (or given at init).
    package var wsURL: String? { state.withLock { $0.wsURL } }

    /// The socket opened by the last successful ``connect()``, if any.
    package var currentSocket: RelayWebSocket? { state.withLock { $0.socket } }

    /// The socket opened by the last successful ``connect()``.
    ///
    /// - Throws: ``RelayClientError/notReady(_:)`` before the first `connect()`.
    package var socket: RelayWebSocket {
        get throws {
            guard let socket = currentSocket else { throw RelayClientError.notReady("desktop is not connected") }
            return socket
        }
    }

    private var originHeaders: [(String, String)] { origin.map { [("Origin", $0)] } ?? [] }

    // MARK: HTTP

    /// `POST /pair/start` with this desktop's identifiers; records `wsURL` from a 200.
    @discardableResult
    package func startPairing(
        schemaVersion: Int? = nil,
        relayWebSocketURL: String? = nil,
        idleTimeoutSeconds: Int? = nil
    ) async throws -> RelayHTTPResponse {
        let (joinToken, expiresAt) = state.withLock { ($0.joinToken, $0.joinTokenExpiresAt) }
        var body: [String: JSONValue] = [
            "sessionID": .string(sessionID),
            "joinToken": .string(joinToken),
            "desktopSessionToken": .string(desktopSessionToken),
            "joinTokenExpiresAt": .string(RelayTimestamp.rfc3339(expiresAt)),
        ]
        if let schemaVersion { body["schemaVersion"] = .int(schemaVersion) }
        if let relayWebSocketURL { body["relayWebSocketURL"] = .string(relayWebSocketURL) }
        if let idleTimeoutSeconds { body["idleTimeoutSeconds"] = .int(idleTimeoutSeconds) }
        let response = try await http.postJSON(path: "/pair/start", body: .object(body), headers: originHeaders)
        if response.status == 200, let wsURL = (try? response.json())?["wsURL"]?.stringValue {
            state.withLock { $0.wsURL = wsURL }
        }
        return response
    }

    /// `POST /pair/refresh` with a new join token (generated when `nil`) and expiry (now + 120 s
    /// when `nil`); a 200 makes them this desktop's current join token.
    @discardableResult
    package func refreshJoinToken(
        newJoinToken: String? = nil,
        expiresAt: Date? = nil,
        schemaVersion: Int? = nil
    ) async throws -> RelayHTTPResponse {
        let token = newJoinToken ?? RelayTokens.token()
        let expiry = expiresAt ?? Date().addingTimeInterval(120)
        var body: [String: JSONValue] = [
            "sessionID": .string(sessionID),
            "joinToken": .string(token),
            "desktopSessionToken": .string(desktopSessionToken),
            "joinTokenExpiresAt": .string(RelayTimestamp.rfc3339(expiry)),
        ]
        if let schemaVersion { body["schemaVersion"] = .int(schemaVersion) }
        let response = try await http.postJSON(path: "/pair/refresh", body: .object(body), headers: originHeaders)
        if response.status == 200 {
            state.withLock { state in
                state.joinToken = token
                state.joinTokenExpiresAt = expiry
            }
        }
        return response
    }

    /// `POST /pair/stop` (the kill switch).
    @discardableResult
    package func stop(schemaVersion: Int? = nil) async throws -> RelayHTTPResponse {
        try await http.postJSON(path: "/pair/stop", body: .object(credentials(schemaVersion: schemaVersion)), headers: originHeaders)
    }

    /// `POST /devices/list`.
    package func listDevices(schemaVersion: Int? = nil) async throws -> RelayHTTPResponse {
        try await http.postJSON(path: "/devices/list", body: .object(credentials(schemaVersion: schemaVersion)), headers: originHeaders)
    }

    /// `POST /devices/revoke` for `deviceID`.
    @discardableResult
    package func revokeDevice(_ deviceID: String, schemaVersion: Int? = nil) async throws -> RelayHTTPResponse {
        var body = credentials(schemaVersion: schemaVersion)
        body["deviceID"] = .string(deviceID)
        return try await http.postJSON(path: "/devices/revoke", body: .object(body), headers: originHeaders)
    }

    /// `POST /devices/scope` (extension 10) for `deviceID` with the grant `fields` as given
    /// (`scope`, `allowedCommands`, `grantExpiresAt`, or anything else a test sends).
    @discardableResult
    package func setScope(_ deviceID: String, fields: [String: JSONValue]) async throws -> RelayHTTPResponse {
        var body = credentials(schemaVersion: 2)
        body["deviceID"] = .string(deviceID)
        body.merge(fields) { $1 }
        return try await http.postJSON(path: "/devices/scope", body: .object(body), headers: originHeaders)
    }

    private func credentials(schemaVersion: Int?) -> [String: JSONValue] {
        var body: [String: JSONValue] = ["sessionID": .string(sessionID), "desktopSessionToken": .string(desktopSessionToken)]
        if let schemaVersion { body["schemaVersion"] = .int(schemaVersion) }
        return body
    }

    // MARK: WebSocket

    /// Opens a WebSocket to `url` (default: the recorded `wsURL`) without authenticating, for tests
    /// that send their own first frame.
    ///
    /// - Parameters:
    ///   - autoReplyPings: See ``RelayWebSocket/connect(to:headers:tls:eventLoopGroup:maxFrameSize:autoReplyPings:receiveBufferSize:connectTimeout:)``;
    ///     `false` lets a test provoke `heartbeat_timeout`.
    ///   - receiveBufferSize: `SO_RCVBUF` for the socket; small values make ``RelayWebSocket/pauseReading()``
    ///     back the relay up quickly (slow-consumer tests).
    package func openSocket(url: String? = nil, autoReplyPings: Bool = true, receiveBufferSize: Int? = nil) async throws -> RelayWebSocket {
        guard let target = url ?? wsURL else { throw RelayClientError.notReady("desktop has no wsURL; call startPairing() first") }
        return try await RelayWebSocket.connect(
            to: target,
            headers: originHeaders,
            eventLoopGroup: eventLoopGroup,
            autoReplyPings: autoReplyPings,
            receiveBufferSize: receiveBufferSize
        )
    }

    /// Opens the session WebSocket, sends `relay.auth` with the desktop token and returns the first
    /// frame, which must be `auth_ok`; the socket then becomes ``socket``.
    ///
    /// A previous socket is left open (so a test can watch it receive `desktop_reconnected`).
    ///
    /// - Throws: ``RelayClientError/authRejected(role:received:)`` when the first event is anything
    ///   but `auth_ok` (the socket is closed).
    ///
    /// `autoReplyPings` and `receiveBufferSize` are passed to ``openSocket(url:autoReplyPings:receiveBufferSize:)``.
    @discardableResult
    package func connect(
        url: String? = nil,
        authTimeout: Duration = .seconds(10),
        autoReplyPings: Bool = true,
        receiveBufferSize: Int? = nil
    ) async throws -> JSONValue {
        let socket = try await openSocket(url: url, autoReplyPings: autoReplyPings, receiveBufferSize: receiveBufferSize)
        do {
            let auth: JSONValue = ["type": "relay.auth", "token": .string(desktopSessionToken)]
            try await socket.sendText(auth.serialized)
            let first = try await RelayRoles.firstFrame(socket, role: "desktop", timeout: authTimeout)
            state.withLock { $0.socket = socket }
            return first
        } catch {
            await socket.close()
            throw error
        }
    }

    /// Reads until a `relay.pair_request` arrives (skipping other text frames, pings and pongs).
    ///
    /// - Throws: ``RelayClientError/timedOut(_:)``, or ``RelayClientError/unexpectedEvent(expected:received:)``
    ///   when the socket closes first.
    package func nextPairRequest(timeout: Duration = .seconds(30)) async throws -> RelayPairRequest {
        let socket = try self.socket
        let deadline = ContinuousClock.now + timeout
        var skipped: [String] = []
        while true {
            let remaining = max(deadline - ContinuousClock.now, .zero)
            let text: String
            do {
                text = try await socket.nextText(timeout: remaining)
            } catch RelayClientError.timedOut {
                throw RelayClientError.timedOut("no relay.pair_request within \(timeout); skipped \(skipped)")
            }
            if let frame = try? JSONValue.parse(text), frame.type == "relay.pair_request",
                let requestID = frame["requestID"]?.stringValue
            {
                return RelayPairRequest(requestID: requestID, frame: frame, skippedFrames: skipped)
            }
            skipped.append(text)
        }
    }

    /// Sends `relay.pair_decision` for `requestID` with this session id, plus `fields` (the grant
    /// of extension 10: `scope`, `allowedCommands`, `grantExpiresAt`).
    package func decide(requestID: String, approved: Bool, fields: [String: JSONValue] = [:]) async throws {
        var decision: [String: JSONValue] = [
            "type": "relay.pair_decision",
            "sessionID": .string(sessionID),
            "requestID": .string(requestID),
            "approved": .bool(approved),
        ]
        decision.merge(fields) { $1 }
        try await socket.sendText(JSONValue.object(decision).serialized)
    }

    /// Sends a desktop envelope `{"schemaVersion":2,"sessionID":…,"seq":…,"timestamp":…,
    /// "payload":{"type":<payloadType>,…payload}}` and returns the exact text sent (phones receive
    /// it byte for byte).
    @discardableResult
    package func sendEnvelope(seq: UInt64, payloadType: String, payload: [String: JSONValue] = [:]) async throws -> String {
        let text = RelayEnvelope.serialize(sessionID: sessionID, seq: seq, kind: RelayEnvelopeKind(rawValue: payloadType), payload: payload)
        try await socket.sendText(text)
        return text
    }

    /// Sends a desktop `event` envelope (see ``sendEnvelope(seq:payloadType:payload:)``) and returns its text.
    @discardableResult
    package func sendEvent(seq: UInt64, payload: [String: JSONValue] = [:]) async throws -> String {
        try await sendEnvelope(seq: seq, payloadType: "event", payload: payload)
    }

    /// Closes the current socket (close frame 1000, then TCP) and forgets it.
    package func disconnect() async {
        let socket = state.withLock { state -> RelayWebSocket? in
            defer { state.socket = nil }
            return state.socket
        }
        await socket?.close()
    }
}

/// Helpers shared by the two roles.
enum RelayRoles {
    /// Reads the first event after `relay.auth`; returns it when it is `auth_ok`, else throws
    /// ``RelayClientError/authRejected(role:received:)`` describing it.
    static func firstFrame(_ socket: RelayWebSocket, role: String, timeout: Duration) async throws -> JSONValue {
        let text: String
        do {
            text = try await socket.nextText(timeout: timeout)
        } catch let error as RelayClientError {
            throw RelayClientError.authRejected(role: role, received: error.description)
        }
        guard let frame = try? JSONValue.parse(text), frame.type == "auth_ok" else {
            throw RelayClientError.authRejected(role: role, received: text)
        }
        return frame
    }
}

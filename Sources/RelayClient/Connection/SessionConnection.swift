// The loop behind both clients: connect, authenticate, read until the connection ends, decide
// whether and when to connect again.

import RelayProtocol

/// What differs between the phone and the desktop on a session socket.
protocol SessionRole: AnyObject, Sendable {
    /// Where to connect, the token to present and the upgrade's headers, read afresh before each
    /// attempt (a phone's token rotates on every connection).
    func connectionTarget() throws -> (url: String, token: String, headers: [(String, String)])
    /// The relay accepted `relay.auth`; `socket` is live. Called before any other frame is read.
    func authenticated(_ authOK: JSONValue, socket: RelayWebSocket, isReconnect: Bool) async
    /// A text frame after `auth_ok` (a `disconnect` frame is handled by the loop and not passed on).
    func received(_ text: String, json: JSONValue?, socket: RelayWebSocket) async
    /// The connection ended; `disconnection.reconnectDelay` says what comes next.
    func disconnected(_ disconnection: RelayDisconnection) async
}

/// Runs one role's connection until the session ends for it, the app closes it, or the reconnect
/// policy gives up.
struct SessionConnection: Sendable {
    let configuration: RelayClientConfiguration
    let role: any SessionRole
    let closeSignal: CloseSignal

    /// How one attempt went.
    private enum Attempt {
        /// The connection was up and has ended as described.
        case ended(RelayDisconnection)
        /// No connection was made (refused, TLS, timeout, authentication refused).
        case failed(RelayDisconnection)
    }

    func run() async -> RelayConnectionEnd {
        var failures = 0
        var immediate = false
        var connectedBefore = false
        while true {
            if closeSignal.isClosed || Task.isCancelled { return .closed }
            let target: (url: String, token: String, headers: [(String, String)])
            do {
                target = try role.connectionTarget()
            } catch {
                await role.disconnected(RelayDisconnection(error: "\(error)"))
                return .gaveUp(attempts: failures, lastError: "\(error)")
            }
            let attempt = await connectOnce(to: target, isReconnect: connectedBefore)
            if closeSignal.isClosed || Task.isCancelled {
                // The app ended a live connection: it hears of it like of any other end.
                if case .ended(var ended) = attempt {
                    ended.error = ended.error ?? "closed by the app"
                    await role.disconnected(ended)
                }
                return .closed
            }
            var disconnection: RelayDisconnection
            switch attempt {
            case .ended(let ended):
                connectedBefore = true
                failures = 0
                disconnection = ended
            case .failed(let failed):
                failures += 1
                disconnection = failed
            }
            if disconnection.endsSession {
                await role.disconnected(disconnection)
                return .ended(reason: disconnection.reason ?? "closed")
            }
            if let limit = configuration.reconnect.maximumAttempts, failures >= limit {
                await role.disconnected(disconnection)
                return .gaveUp(attempts: failures, lastError: disconnection.description)
            }
            // A draining node: the next connection goes elsewhere, now. Then back off as usual.
            let delay: Duration =
                disconnection.nodeIsDraining && !immediate ? .zero : configuration.reconnect.delay(afterFailures: max(failures, 1))
            immediate = disconnection.nodeIsDraining && !immediate
            disconnection.reconnectDelay = delay
            await role.disconnected(disconnection)
            if delay > .zero { await closeSignal.sleep(for: delay) }
        }
    }

    /// One connection: open, authenticate, read until it ends.
    private func connectOnce(to target: (url: String, token: String, headers: [(String, String)]), isReconnect: Bool) async -> Attempt {
        let socket: RelayWebSocket
        do {
            socket = try await RelayWebSocket.connect(
                to: target.url, headers: target.headers, tls: configuration.tls, eventLoopGroup: configuration.eventLoopGroup,
                connectTimeout: configuration.connectTimeout)
        } catch {
            return .failed(RelayDisconnection(error: "\(error)"))
        }
        if closeSignal.isClosed {
            await socket.close()
            return .failed(RelayDisconnection(error: "closed by the app"))
        }
        // close() closes the socket this loop holds; the read below then ends.
        let registration = SocketRegistration(socket: socket, signal: closeSignal)
        defer { registration.release() }
        do {
            try await socket.sendText(JSONValue.object(["type": "relay.auth", "token": .string(target.token)]).serialized)
        } catch {
            return .failed(RelayDisconnection(error: "\(error)"))
        }
        switch await readAuthentication(socket) {
        case .accepted(let authOK):
            await role.authenticated(authOK, socket: socket, isReconnect: isReconnect)
            return .ended(await readUntilEnd(socket))
        case .refused(let refused):
            await socket.close()
            return .failed(refused)
        }
    }

    private enum Authentication {
        case accepted(JSONValue)
        case refused(RelayDisconnection)
    }

    /// The first frame after `relay.auth`: `auth_ok`, or how the relay refused.
    private func readAuthentication(_ socket: RelayWebSocket) async -> Authentication {
        let deadline = ContinuousClock.now + configuration.authTimeout
        var refusal = RelayDisconnection()
        while true {
            let event: RelayWebSocketEvent?
            do {
                event = try await socket.next(timeout: max(deadline - ContinuousClock.now, .zero))
            } catch {
                refusal.error = "\(error)"
                return .refused(refusal)
            }
            switch event {
            case nil:
                refusal.error = "no auth_ok from the relay within \(configuration.authTimeout)"
                return .refused(refusal)
            case .text(let text):
                let json = try? JSONValue.parse(text)
                if json?.type == "auth_ok", let json { return .accepted(json) }
                if json?.type == "disconnect" {
                    refusal.reason = json?["reason"]?.stringValue
                    continue
                }
                refusal.error = "the relay answered relay.auth with \(text.prefix(200))"
                return .refused(refusal)
            case .close(let code, _):
                refusal.closeCode = code
            case .closed:
                if refusal.reason == nil, refusal.closeCode == nil {
                    refusal.error = socket.failureDescription ?? "the relay closed the connection during authentication"
                }
                return .refused(refusal)
            case .ping, .pong, .binary:
                continue
            }
        }
    }

    /// Reads frames until the connection ends, passing text to the role.
    private func readUntilEnd(_ socket: RelayWebSocket) async -> RelayDisconnection {
        var ending = RelayDisconnection()
        while true {
            let event: RelayWebSocketEvent?
            do {
                event = try await socket.next(timeout: configuration.silenceTimeout)
            } catch {
                ending.error = "\(error)"
                await socket.close()
                return ending
            }
            switch event {
            case nil:
                ending.error = "nothing from the relay for \(configuration.silenceTimeout); the connection is presumed dead"
                await socket.close()
                return ending
            case .text(let text):
                let json = try? JSONValue.parse(text)
                if json?.type == "disconnect", let reason = json?["reason"]?.stringValue {
                    ending.reason = reason
                    continue
                }
                await role.received(text, json: json, socket: socket)
            case .close(let code, _):
                ending.closeCode = code
            case .closed:
                if ending.reason == nil, ending.closeCode == nil, !closeSignal.isClosed {
                    ending.error = socket.failureDescription ?? "the connection was lost"
                }
                return ending
            case .ping, .pong, .binary:
                continue
            }
        }
    }
}

/// Lets `close()` reach the socket a loop is using: registered while the loop holds it.
private final class SocketRegistration: Sendable {
    private let socket: RelayWebSocket
    private let signal: CloseSignal
    private let watcher: Task<Void, Never>

    init(socket: RelayWebSocket, signal: CloseSignal) {
        self.socket = socket
        self.signal = signal
        // Waits for the latch (or release) and then closes the socket, which ends the read loop.
        self.watcher = Task { [socket, signal] in
            await signal.sleep(for: .seconds(365 * 24 * 3600))
            if signal.isClosed { await socket.close() }
        }
    }

    func release() { watcher.cancel() }
}

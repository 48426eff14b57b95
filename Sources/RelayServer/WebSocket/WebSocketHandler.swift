// One upgraded socket (PROTOCOL §4): auth, reassembly, limits, heartbeats, hand-off to the core.

import Logging
import NIOCore
import NIOWebSocket
import RelayCore
import RelayProtocol

/// Drives one upgraded socket on its event loop (PROTOCOL §4): the auth handshake and its
/// timeout, message reassembly and size limit, the per-socket rate window, heartbeats, and the
/// hand-off of each text message to the core's endpoint. Everything here is synchronous; the only
/// suspension is the auth lookup, during which later frames wait in order.
final class WebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private enum Phase {
        case awaitingAuth
        case authenticating(buffered: [[UInt8]])
        case open(any SocketEndpoint)
        case closed
    }

    private let settings: WebSocketSettings
    private let peer: SocketPeer
    private let legacyToken: String?
    private let connection: WebSocketConnection
    private var phase = Phase.awaitingAuth
    private var fragments: [UInt8] = []
    private var fragmentOpcode: WebSocketOpcode?
    private var rate: RateWindow?
    private var lastInboundNanos: UInt64 = 0
    /// Cancelled once, when the socket authenticates. The heartbeat is never cancelled: NIO finds a
    /// cancelled task by scanning its loop's whole heap of scheduled tasks, where every open socket
    /// has one, so closing every socket (a drain) cancelled in O(sockets²). Each tick holds the
    /// handler weakly and stops once the socket has closed.
    private var authTimer: Scheduled<Void>?
    private var quiesceRequested = false
    private var admitted: (@Sendable () -> Void)?

    /// Gives back the place this socket held before it authenticated.
    private func leaveAdmission() {
        admitted?()
        admitted = nil
    }

    /// Text frames that may wait behind the auth frame while it is checked.
    static let maxFramesBeforeAuth = 16

    /// `admitted` runs once, when the socket authenticates or ends, whichever comes first: until
    /// then it holds a place among the node's `MAX_HTTP_CONNECTIONS` (an upgraded socket that never
    /// authenticates is as cheap to open as an idle connection).
    init(
        settings: WebSocketSettings, peer: SocketPeer, legacyToken: String?, channel: any Channel,
        admitted: @escaping @Sendable () -> Void = {}
    ) {
        self.settings = settings
        self.peer = peer
        self.legacyToken = legacyToken
        self.admitted = admitted
        self.connection = WebSocketConnection(
            channel: channel, capacity: settings.outboundCapacity, stallTimeoutMillis: settings.writeStallTimeoutMillis)
    }

    private var relay: Relay { settings.relay }

    func handlerAdded(context: ChannelHandlerContext) {
        relay.stats.authAttempt()
        if let legacyToken {
            startAuth(token: legacyToken, context: context)
            return
        }
        authTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(settings.authTimeoutMillis)) { [weak self] in
            guard let self, case .awaitingAuth = self.phase else { return }
            self.rejectAuth(.authTimeoutOrMissingPayload)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // RFC 6455 §5.1-5.2: every client frame is masked, and no extension was negotiated that
        // could give the RSV bits a meaning.
        guard frame.maskKey != nil, !frame.rsv1, !frame.rsv2, !frame.rsv3 else { return protocolError() }
        switch frame.opcode {
        case .text, .binary, .continuation:
            receiveDataFrame(frame, context: context)
        case .ping:
            guard case .open(let endpoint) = phase else { return failFirstFrame() }
            lastInboundNanos = monotonicNanoseconds()
            endpoint.receivedControlFrame()
            // A Pong that does not fit is dropped silently (PROTOCOL §4.10).
            _ = connection.sendControl(.pong, data: frame.unmaskedData)
        case .pong:
            guard case .open(let endpoint) = phase else { return failFirstFrame() }
            lastInboundNanos = monotonicNanoseconds()
            endpoint.receivedControlFrame()
        case .connectionClose:
            if case .awaitingAuth = phase {
                relay.recordAuthFailure(.authTimeoutOrMissingPayload, peer: peer)
                phase = .closed
            }
            var data = frame.unmaskedData
            // RFC 6455 §5.5.1, §7.4: no body, or a valid code and a UTF-8 reason, echoed back.
            guard data.readableBytes != 1 else { return protocolError() }
            let code = data.readInteger(as: UInt16.self) ?? 1000
            guard Self.isValidReceivedCloseCode(code) else { return protocolError() }
            guard UTF8Validation.isValid(Array(data.readableBytesView)) else {
                return connection.close(text: nil, code: 1007, closeReason: "invalid utf-8")
            }
            connection.close(text: nil, code: code, closeReason: "")
        default:
            protocolError()
        }
    }

    /// Close 1002: the peer broke RFC 6455 framing.
    private func protocolError() {
        connection.close(text: nil, code: 1002, closeReason: "protocol error")
    }

    /// The codes a peer may send (RFC 6455 §7.4.1-7.4.2 and the IANA registry): 1000-1003 and
    /// 1007-1014; 3000-4999 for libraries and applications. 1004-1006 and 1015 must never be sent.
    static func isValidReceivedCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    private func failFirstFrame() {
        if case .awaitingAuth = phase { rejectAuth(.authTimeoutOrMissingPayload) }
    }

    private func receiveDataFrame(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        if frame.opcode != .continuation {
            guard fragmentOpcode == nil else { return protocolError() }
            fragmentOpcode = frame.opcode
            fragments.removeAll(keepingCapacity: true)
        } else if fragmentOpcode == nil {
            return protocolError()
        }
        guard fragments.count + frame.length <= settings.maxMessageBytes else {
            return terminate(.messageTooLarge)
        }
        WebSocketUnmasking.append(frame.data, key: frame.maskKey, to: &fragments)
        guard frame.fin, let opcode = fragmentOpcode else { return }
        fragmentOpcode = nil
        let message = fragments
        fragments = []
        if opcode == .text {
            guard UTF8Validation.isValid(message) else { return connection.close(text: nil, code: 1007, closeReason: "invalid utf-8") }
            receiveText(message, context: context)
        } else if case .awaitingAuth = phase {
            rejectAuth(.authTimeoutOrMissingPayload)
        }
        // Binary frames after auth are ignored: no rate window, no heartbeat credit.
    }

    private func receiveText(_ text: [UInt8], context: ChannelHandlerContext) {
        switch phase {
        case .awaitingAuth:
            authTimer?.cancel()
            authTimer = nil
            guard case .object(let fields)? = try? JSONValue.parse(text),
                case .string(let type)? = fields["type"], case .string(let token)? = fields["token"]
            else { return rejectAuth(.authTimeoutOrMissingPayload) }
            guard type == "relay.auth" else { return rejectAuth(.invalidAuthPayload) }
            startAuth(token: token, context: context)
        case .authenticating(var buffered):
            // Frames sent before auth_ok wait in order, within a bound: a client may pipeline a
            // few commands behind its auth frame, not flood a socket nobody has admitted yet.
            let bytes = buffered.reduce(text.count) { $0 + $1.count }
            guard buffered.count < Self.maxFramesBeforeAuth, bytes <= 2 * settings.maxMessageBytes else {
                phase = .closed
                return terminate(.socketRateLimited)
            }
            buffered.append(text)
            phase = .authenticating(buffered: buffered)
        case .open(let endpoint):
            deliver(text, to: endpoint)
        case .closed:
            return
        }
    }

    private func startAuth(token: String, context: ChannelHandlerContext) {
        phase = .authenticating(buffered: [])
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let relay = self.relay, peer = self.peer, connection = self.connection
        Task {
            let outcome = await relay.authenticate(token: token, peer: peer, connection: connection)
            loop.execute { bound.value.authCompleted(outcome) }
        }
    }

    private func authCompleted(_ outcome: AuthOutcome) {
        switch outcome {
        case .rejected(let reason):
            phase = .closed
            close(for: reason)
        case .authenticated(let endpoint):
            guard case .authenticating(let buffered) = phase else {
                // The socket went away while auth was in flight.
                endpoint.closed()
                return
            }
            phase = .open(endpoint)
            leaveAdmission()
            if quiesceRequested {
                // The server began shutting down while this socket authenticated: the drain has
                // already listed its sockets, so this one is told here.
                return terminate(.serverShutdown)
            }
            rate = RateWindow(startingAt: wallClockMillis())
            lastInboundNanos = monotonicNanoseconds()
            scheduleHeartbeat()
            for text in buffered { deliver(text, to: endpoint) }
        }
    }

    /// An authenticated text message: the per-socket rate window, then the core.
    private func deliver(_ text: [UInt8], to endpoint: any SocketEndpoint) {
        guard !connection.isClosed else { return }
        guard rate!.consume(limit: settings.maxMessagesPerMinute, now: wallClockMillis()) else {
            return terminate(.socketRateLimited)
        }
        lastInboundNanos = monotonicNanoseconds()
        endpoint.receive(text: text)
    }

    private func rejectAuth(_ reason: AuthFailureReason) {
        relay.recordAuthFailure(reason, peer: peer)
        phase = .closed
        close(for: reason)
    }

    /// What a client sees for each auth failure (PROTOCOL §4.2, with DECISIONS 8's close frames).
    private func close(for reason: AuthFailureReason) {
        switch reason {
        case .authTimeoutOrMissingPayload:
            connection.close(text: Array("{}".utf8), code: 1008, closeReason: reason.rawValue)
        case .invalidAuthPayload, .mobileOriginNotAllowed, .deviceCapReached:
            connection.close(text: nil, code: 1008, closeReason: reason.rawValue)
        case .tokenRotationPersistFailed:
            connection.close(text: nil, code: 1011, closeReason: reason.rawValue)
        case .relayOverCapacity:
            connection.terminate(.relayOverCapacity)
        case .authRateLimited:
            // Not `session_expired`: the credentials may be fine, the client IP must slow down.
            connection.terminate(.socketRateLimited)
        case .deviceExpired:
            connection.terminate(.deviceExpired)
        case .tokenNotFound, .desktopSessionMissing, .mobileSessionMissing, .deviceNotRegistered, .deviceRecordMissing:
            connection.terminate(.sessionExpired)
        }
    }

    private func terminate(_ reason: DisconnectReason) {
        relay.stats.disconnect(reason)
        connection.terminate(reason)
    }

    private func scheduleHeartbeat() {
        let loop = connection.channel.eventLoop.assumeIsolated()
        loop.scheduleTask(in: .milliseconds(settings.heartbeatIntervalMillis)) { [weak self] in
            self?.heartbeatTick()
        }
    }

    private func heartbeatTick() {
        guard case .open = phase, !connection.isClosed else { return }
        let silentNanos = monotonicNanoseconds() &- lastInboundNanos
        if silentNanos > UInt64(settings.heartbeatTimeoutMillis) * 1_000_000 {
            return terminate(.heartbeatTimeout)
        }
        if connection.isStalled() {
            relay.stats.sendFailure(slowConsumer: true)
            settings.logger.warning("slow_consumer_disconnect", metadata: ["connection": "\(connection.connectionID)", "cause": "write_stall"])
            return terminate(.slowConsumer)
        }
        if case .full = connection.sendControl(.ping) {
            // A heartbeat that does not fit closes the socket with no message (PROTOCOL §4.10).
            connection.close(text: nil, code: 1008, closeReason: "")
            return
        }
        scheduleHeartbeat()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The server allows half-closure (for HTTP), but a WebSocket peer that sent FIN is gone:
        // close now rather than hold the socket until the auth or heartbeat timeout.
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
            return
        }
        // Server quiescing: authenticated sockets are drained by the shutdown sequence; a socket
        // still waiting to authenticate has nothing to lose.
        if event is ChannelShouldQuiesceEvent {
            switch phase {
            case .awaitingAuth: connection.close(text: nil, code: 1012, closeReason: "server_shutdown")
            case .authenticating: quiesceRequested = true
            case .open, .closed: break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wsError = error as? NIOWebSocketError {
            switch wsError {
            case .invalidFrameLength:
                if case .open = phase { return terminate(.messageTooLarge) }
                connection.close(text: Array(DisconnectReason.messageTooLarge.frameText.utf8), code: 1009, closeReason: "message_too_large")
            default:
                // A fragmented control frame, or one with a payload over 125 bytes (RFC 6455 §5.5).
                protocolError()
            }
            return
        }
        // Once a termination is under way its own deadline closes the socket; bytes the peer
        // keeps sending meanwhile must not cut off the disconnect and close frame.
        guard !connection.isClosed else { return }
        settings.logger.debug("websocket_error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.markClosed()
        leaveAdmission()
        let previous = phase
        phase = .closed
        if case .open(let endpoint) = previous { endpoint.closed() }
        if case .awaitingAuth = previous { relay.recordAuthFailure(.authTimeoutOrMissingPayload, peer: peer) }
        context.fireChannelInactive()
    }

}

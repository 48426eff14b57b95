// One HTTP/1.1 connection: requests in order, its timeouts and limits, the WebSocket upgrade.

import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import RelayCore

/// One HTTP/1.1 connection until it closes or becomes a WebSocket (RFC 9112): requests are
/// answered one at a time and in order (pipelined ones wait, and reading pauses while one does);
/// `GET /ws` with upgrade headers is upgraded on any request of the connection; every error gets
/// an answer and a close; and the connection is timed whenever the relay owes it nothing:
/// idle between requests, the head from its first byte, the body from the end of the head.
///
/// NIO's request decoder stops parsing after any request llhttp counts as an upgrade (an
/// `Upgrade` header with `Connection: upgrade`, or `CONNECT`). For one the relay does not upgrade,
/// a fresh decoder takes over the bytes the stopped one holds, so the connection stays usable.
final class HTTPConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// A request received whole (or answered early), waiting for its turn.
    private struct Request {
        var head: HTTPRequestHead
        var body = ByteBuffer()
        var bodyTooLarge = false
        /// The decoder stops parsing after this request.
        var stopsDecoder: Bool
        var isWebSocketUpgrade: Bool
        var keepAlive: Bool
    }

    private enum Item {
        case request(Request)
        /// An error answered with `status`, then the connection closes.
        case failure(HTTPResponseStatus)
    }

    private enum TimerKind { case idle, header, body }

    private let settings: HTTPConnectionSettings
    private var decoder: ByteToMessageHandler<HTTPRequestDecoder>
    private let encoder: HTTPResponseEncoder
    private var meter: HTTPHeadMeter?
    private var context: ChannelHandlerContext?

    // Receiving.
    private var receiving: Request?
    private var headBytes = 0
    private var headSawLineFeed = false
    private var headStartedAt = NIODeadline.now()
    private var bodyStartedAt = NIODeadline.now()
    private var continuePending = false
    /// After an error or an early answer nothing more is read: the connection closes once answered.
    private var discardInbound = false

    // Answering.
    private var queue: [Item] = []
    private var responding = false
    private var idleSince = NIODeadline.now()
    private var readPending = false
    private var inputClosed = false
    private var quiescing = false
    private var upgrading = false
    private var released = false
    private var lingering = false

    /// The timeout in force, if any. Changing it never cancels a scheduled task (NIO finds a
    /// cancelled task by scanning its loop's heap, where every open socket has one): a task
    /// scheduled for an earlier deadline finds, when it fires, a later one and schedules anew.
    /// Only the connection's end cancels, once, so a closed connection leaves no task behind.
    private var timerDeadline: (kind: TimerKind, at: NIODeadline)?
    /// The earliest task still scheduled: when it fires, and the task.
    private var armed: (at: NIODeadline, task: Scheduled<Void>)?

    init(settings: HTTPConnectionSettings, decoder: ByteToMessageHandler<HTTPRequestDecoder>, encoder: HTTPResponseEncoder) {
        self.settings = settings
        self.decoder = decoder
        self.encoder = encoder
    }

    /// The meter in front of the decoder (removed with the HTTP handlers at an upgrade).
    func attach(meter: HTTPHeadMeter) { self.meter = meter }

    private var limits: HTTPLimits { settings.limits }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        idleSince = .now()
        updateTimer()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        armed?.task.cancel()
        armed = nil
        releaseGate()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !discardInbound, !upgrading else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            receiveHead(head)
        case .body(var part):
            guard var request = receiving else { return }
            guard request.body.readableBytes + part.readableBytes <= settings.maxBodyBytes else {
                receiving = nil
                request.body = ByteBuffer()
                return answerEarly(request)
            }
            receiving = nil  // keeps the body buffer uniquely referenced while it grows
            request.body.writeBuffer(&part)
            receiving = request
        case .end:
            guard let request = receiving else { return }
            receiving = nil
            headBytes = 0
            headSawLineFeed = false
            if request.stopsDecoder && !request.isWebSocketUpgrade && request.keepAlive {
                // Out of the decoder's call stack: it is the handler being replaced.
                context.eventLoop.assumeIsolated().execute { self.replaceDecoder() }
            }
            enqueue(.request(request))
        }
    }

    func read(context: ChannelHandlerContext) {
        // Backpressure: one whole request may wait behind the one being answered; past that,
        // the socket is not read until the queue moves.
        if !lingering && (!queue.isEmpty || discardInbound) {
            readPending = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed, lingering {
            context.close(promise: nil)
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            // The client sent FIN: answer what is complete, then close (a partial request has
            // already been reported by the decoder as an error).
            inputClosed = true
            closeIfDone()
        } else if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if receiving == nil && headBytes == 0 { closeIfDone() }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !upgrading else { return context.fireErrorCaught(error) }
        if let parserError = error as? HTTPParserError {
            if parserError == .headerOverflow {
                if headSawLineFeed {
                    reject(.headerTooLarge, status: .requestHeaderFieldsTooLarge)
                } else {
                    reject(.uriTooLong, status: .uriTooLong)
                }
            } else if parserError == .invalidVersion {
                // HTTP/2.0 and the like in an HTTP/1 request line (RFC 9110 §15.6.6).
                reject(.malformedRequest, status: .httpVersionNotSupported)
            } else {
                reject(.malformedRequest, status: .badRequest)
            }
        } else {
            settings.logger.debug("http_connection_error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    // MARK: Raw bytes (from the meter)

    /// Bytes about to reach the decoder: while a head is being read they count against
    /// `MAX_HTTP_HEADER_BYTES`, and the first of them starts the header timeout.
    func bytesArriving(_ buffer: ByteBuffer) {
        guard isReadingHead else { return }
        if headBytes == 0 { headStartedAt = .now() }
        headBytes += buffer.readableBytes
        if !headSawLineFeed { headSawLineFeed = buffer.readableBytesView.contains(UInt8(ascii: "\n")) }
    }

    /// The decoder has taken the bytes; a head still incomplete past the limit is refused.
    func bytesArrived() {
        guard isReadingHead else { return }
        if headBytes > limits.maxHeaderBytes {
            if headSawLineFeed {
                reject(.headerTooLarge, status: .requestHeaderFieldsTooLarge)
            } else {
                reject(.uriTooLong, status: .uriTooLong)
            }
        } else {
            updateTimer()
        }
    }

    private var isReadingHead: Bool { context != nil && receiving == nil && !discardInbound && !upgrading }

    // MARK: Requests

    private func receiveHead(_ head: HTTPRequestHead) {
        headBytes = 0
        headSawLineFeed = false
        bodyStartedAt = .now()
        let requestLine = head.method.rawValue.utf8.count + head.uri.utf8.count + 11
        var size = requestLine
        for (name, value) in head.headers { size += name.utf8.count + value.utf8.count + 4 }
        if requestLine > limits.maxHeaderBytes { return reject(.uriTooLong, status: .uriTooLong) }
        if size > limits.maxHeaderBytes { return reject(.headerTooLarge, status: .requestHeaderFieldsTooLarge) }

        let isHTTP11 = head.version.major == 1 && head.version.minor >= 1
        // RFC 9112 §3.2: one Host field, required from HTTP/1.1 on.
        let hosts = head.headers["Host"].count
        if hosts > 1 || (isHTTP11 && hosts == 0) { return reject(.malformedRequest, status: .badRequest) }
        var expectsContinue = false
        if let expectation = head.headers.first(name: "Expect") {
            guard expectation.trimmingASCIIWhitespace().lowercased() == "100-continue" else {
                return reject(.malformedRequest, status: .expectationFailed)
            }
            expectsContinue = isHTTP11
        }

        let connectionTokens = Self.tokens(head.headers["Connection"])
        // llhttp's rule for where it stops parsing (see the type's comment).
        let stopsDecoder = head.method == .CONNECT || (head.headers.contains(name: "Upgrade") && connectionTokens.contains("upgrade"))
        let isWebSocket = stopsDecoder && isHTTP11 && head.method == .GET
            && HTTPRequestMessage.path(of: head.uri) == "/ws" && Self.tokens(head.headers["Upgrade"]).contains("websocket")
        let request = Request(
            head: head, stopsDecoder: stopsDecoder, isWebSocketUpgrade: isWebSocket,
            keepAlive: head.isKeepAlive && head.method != .CONNECT)

        if let length = head.headers.first(name: "Content-Length").flatMap({ Int($0) }), length > settings.maxBodyBytes {
            return answerEarly(request)
        }
        receiving = request
        if expectsContinue {
            if !responding && queue.isEmpty { sendContinue() } else { continuePending = true }
        }
        updateTimer()
    }

    /// A body over the limit: the request is answered without reading the rest, then the
    /// connection closes (the unread body would otherwise be taken for the next request).
    private func answerEarly(_ request: Request) {
        var request = request
        request.bodyTooLarge = true
        request.keepAlive = false
        discardInbound = true
        settings.gate.count(.bodyTooLarge)
        enqueue(.request(request))
    }

    /// Answers `status` after whatever is ahead of it, then closes; nothing more is read.
    private func reject(_ reason: HTTPRejection, status: HTTPResponseStatus) {
        guard !discardInbound, !upgrading else { return }
        discardInbound = true
        receiving = nil
        settings.gate.count(reason)
        enqueue(.failure(status))
    }

    private func enqueue(_ item: Item) {
        queue.append(item)
        processNext()
    }

    private func processNext() {
        guard let context, !responding, !upgrading, !queue.isEmpty else { return closeIfDone() }
        let item = queue.removeFirst()
        if queue.isEmpty && readPending && !discardInbound {
            readPending = false
            context.read()
        }
        switch item {
        case .failure(let status):
            answerAndClose(settings.routes.plain(status, status.reasonPhrase))
        case .request(let request) where request.isWebSocketUpgrade && !request.bodyTooLarge && quiescing:
            // The server is shutting down: a socket opened now would miss the drain. The client
            // reconnects, through the load balancer, to a node that stays.
            answerAndClose(settings.routes.plain(.serviceUnavailable, "Server is shutting down"))
        case .request(let request) where request.isWebSocketUpgrade && !request.bodyTooLarge:
            upgrading = true
            cancelTimer()
            // Out of the decoder's call stack: the upgrade removes it.
            context.eventLoop.assumeIsolated().execute { self.upgrade(request) }
        case .request(let request):
            responding = true
            updateTimer()
            let message = HTTPRequestMessage(head: request.head, body: request.body, bodyTooLarge: request.bodyTooLarge)
            let routes = settings.routes
            let remote = context.channel.remoteAddress
            let loop = context.eventLoop
            let bound = NIOLoopBound(self, eventLoop: loop)
            let head = request.head, keepAlive = request.keepAlive
            Task {
                let response = await routes.respond(to: message, remoteAddress: remote)
                loop.execute {
                    bound.value.write(response, version: head.version, isHEAD: head.method == .HEAD, keepAlive: keepAlive)
                }
            }
        }
    }

    /// Writes one whole response, then closes or moves to the next request.
    private func write(_ response: HTTPRouteResponse, version: HTTPVersion, isHEAD: Bool, keepAlive: Bool) {
        guard let context, context.channel.isActive else { return }
        let keepAlive = keepAlive && !quiescing
        var headers = response.headers
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
        headers.replaceOrAdd(name: "Date", value: HTTPDate.now())
        if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if version.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
        if !isHEAD && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        responding = false
        if !keepAlive {
            discardInbound = true
            queue.removeAll()
            cancelTimer()
            written.futureResult.assumeIsolated().whenComplete { _ in self.linger() }
            return
        }
        idleSince = .now()
        if headBytes > 0 { headStartedAt = .now() }
        if continuePending, queue.isEmpty, receiving != nil {
            continuePending = false
            sendContinue()
        }
        processNext()
        updateTimer()
    }

    /// A response of the relay's own (an error, a refusal), after which the connection closes.
    private func answerAndClose(_ response: HTTPRouteResponse) {
        write(response, version: .http1_1, isHEAD: false, keepAlive: false)
    }

    private func sendContinue() {
        context?.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
    }

    /// After a closing answer: our side is shut for writing and what the client still sends is
    /// read and dropped for a moment, so closing with unread bytes does not make the kernel reset
    /// the connection and destroy the answer before the client reads it (RFC 9112 §9.6).
    private func linger() {
        guard let context, context.channel.isActive else { return }
        lingering = true
        context.close(mode: .output, promise: nil)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: Self.lingerTime) { channel.close(promise: nil) }
        if readPending {
            readPending = false
            context.read()
        }
    }

    /// How long a closing connection's input is drained.
    static let lingerTime = TimeAmount.seconds(2)

    /// Closes once nothing is owed: the client half-closed, or the server is quiescing.
    private func closeIfDone() {
        guard let context, !responding, queue.isEmpty, !upgrading, inputClosed || quiescing else { return }
        if inputClosed || (receiving == nil && headBytes == 0) {
            cancelTimer()
            context.close(promise: nil)
        }
    }

    /// A fresh decoder takes over the bytes held by the one that stopped after an upgrade-flagged
    /// request the relay answered as plain HTTP.
    private func replaceDecoder() {
        guard let context, !discardInbound, !upgrading else { return }
        let fresh = settings.makeDecoder()
        let pipeline = context.pipeline.syncOperations
        do {
            try pipeline.addHandler(fresh, position: .after(decoder))
            pipeline.removeHandler(decoder, promise: nil)
            decoder = fresh
        } catch {
            context.close(promise: nil)
        }
    }

    // MARK: WebSocket upgrade

    private func upgrade(_ request: Request) {
        guard let context else { return }
        let head = request.head
        guard let key = head.headers.first(name: "Sec-WebSocket-Key"), Self.isWebSocketKey(key),
            head.headers["Sec-WebSocket-Key"].count == 1
        else { return refuseUpgrade() }
        let upgrader = NIOTypedWebSocketServerUpgrader<Void>(
            maxFrameSize: settings.webSocket.maxMessageBytes,
            shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
        upgrader.buildUpgradeResponse(channel: context.channel, upgradeRequest: head, initialResponseHeaders: [:])
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let headers): self.completeUpgrade(head, responseHeaders: headers)
                case .failure: self.refuseUpgrade()
                }
            }
    }

    /// Missing or invalid handshake fields (PROTOCOL §4.1: 400), then close.
    private func refuseUpgrade() {
        upgrading = false
        answerAndClose(settings.routes.webSocketUpgradeExpected())
    }

    private func completeUpgrade(_ head: HTTPRequestHead, responseHeaders: HTTPHeaders) {
        guard let context else { return }
        let channel = context.channel
        context.writeAndFlush(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: responseHeaders))),
            promise: nil)
        let settings = self.settings
        let peer = SocketPeer(
            remoteIP: ClientAddress.resolve(
                peer: channel.remoteAddress, forwardedFor: head.headers["X-Forwarded-For"], trustedHops: settings.trustedProxyHops),
            origin: head.headers.first(name: "Origin"),
            userAgent: head.headers.first(name: "User-Agent"), traceparent: head.headers.first(name: "traceparent"))
        let token = settings.allowLegacyQueryToken ? RelayChildChannel.queryToken(head.uri) : nil
        let pipeline = channel.pipeline.syncOperations
        let decoder = self.decoder
        // The connection's place under MAX_HTTP_CONNECTIONS passes to the socket, which gives it
        // back once it authenticates: an upgraded socket that never does costs what an idle
        // connection costs.
        released = true
        let gate = settings.gate
        var handedOver = false
        // HTTP out, WebSocket in. The decoder goes last, so what it holds after the upgrade
        // request (frames a client sent without waiting for the 101) flows into the frame decoder.
        do {
            if let meter { pipeline.removeHandler(meter, promise: nil) }
            pipeline.removeHandler(encoder, promise: nil)
            pipeline.removeHandler(context: context, promise: nil)
            try pipeline.addHandler(WebSocketFrameEncoder())
            try pipeline.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: settings.webSocket.maxMessageBytes)))
            try pipeline.addHandler(WebSocketHandler(
                settings: settings.webSocket, peer: peer, legacyToken: token, channel: channel, admitted: { gate.release() }))
            handedOver = true
            pipeline.removeHandler(decoder, promise: nil)
        } catch {
            if !handedOver { gate.release() }
            settings.logger.debug("websocket_upgrade_failed", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
        }
    }

    /// A `Sec-WebSocket-Key`: the base64 of 16 bytes (RFC 6455 §4.1).
    static func isWebSocketKey(_ key: String) -> Bool {
        let bytes = Array(key.trimmingASCIIWhitespace().utf8)
        guard bytes.count == 24, bytes[22] == UInt8(ascii: "="), bytes[23] == UInt8(ascii: "=") else { return false }
        return bytes[..<22].allSatisfy { b in
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2B || b == 0x2F
        }
    }

    /// The lower-cased comma-separated tokens of a header's values.
    static func tokens(_ values: [String]) -> Set<String> {
        var tokens = Set<String>()
        for value in values {
            for token in value.split(separator: ",") { tokens.insert(token.trimmingASCIIWhitespace().lowercased()) }
        }
        return tokens
    }

    // MARK: Timers

    /// One deadline at a time, from the connection's state: none while the relay owes an answer
    /// (a long-poll is not the client's delay), the body's while a body is read, the head's once
    /// its first byte came, otherwise the idle one.
    private func updateTimer() {
        guard context != nil, !upgrading, !discardInbound else { return cancelTimer() }
        if responding || !queue.isEmpty {
            timerDeadline = nil
        } else if receiving != nil {
            timerDeadline = (.body, bodyStartedAt + .milliseconds(limits.bodyTimeoutMillis))
        } else if headBytes > 0 {
            timerDeadline = (.header, headStartedAt + .milliseconds(limits.headerTimeoutMillis))
        } else {
            timerDeadline = (.idle, idleSince + .milliseconds(limits.idleTimeoutMillis))
        }
        armTimer()
    }

    /// Schedules a task for the deadline in force unless one already fires no later than it.
    private func armTimer() {
        guard let context, let wanted = timerDeadline else { return }
        if let armed, armed.at <= wanted.at { return }
        let task = context.eventLoop.assumeIsolated().scheduleTask(deadline: wanted.at) { [weak self] () -> Void in
            self?.timerTaskFired(wanted.at)
        }
        armed = (wanted.at, task)
    }

    /// Forgets the timeout in force; a task still scheduled finds nothing to do.
    private func cancelTimer() {
        timerDeadline = nil
    }

    /// A scheduled task fired: the timeout in force, if it is due; otherwise it is armed again.
    private func timerTaskFired(_ scheduledFor: NIODeadline) {
        if armed?.at == scheduledFor { armed = nil }
        guard let wanted = timerDeadline else { return }
        guard NIODeadline.now() >= wanted.at else { return armTimer() }
        timerFired(wanted.kind)
    }

    private func timerFired(_ kind: TimerKind) {
        timerDeadline = nil
        guard let context else { return }
        switch kind {
        case .idle:
            settings.gate.count(.idleTimeout)
            context.close(promise: nil)
        case .header:
            reject(.headerTimeout, status: .requestTimeout)
        case .body:
            reject(.bodyTimeout, status: .requestTimeout)
        }
    }

    private func releaseGate() {
        guard !released else { return }
        released = true
        settings.gate.release()
    }
}

// An RFC 6455 client connection, plain or TLS, with raw frame access.

import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import RelayProtocol

/// A client WebSocket over SwiftNIO with direct access to frames.
///
/// Inbound frames are buffered without bound, in order, by a channel handler and read by **one**
/// task through ``next(timeout:)`` and the helpers built on it. Outbound calls write one masked frame
/// each and return once the frame has been written to the socket. Dropping the last reference closes
/// the TCP connection (without a close frame); ``close()`` closes politely.
package final class RelayWebSocket: Sendable {
    /// The URL this socket was opened to.
    package let url: String
    private let channel: any Channel
    private let inbox: RelayWebSocketInbox

    private init(url: String, channel: any Channel, inbox: RelayWebSocketInbox) {
        self.url = url
        self.channel = channel
        self.inbox = inbox
    }

    deinit {
        channel.close(promise: nil)
    }

    // MARK: Connecting

    private enum UpgradeOutcome: Sendable {
        case upgraded
        case rejected(EventLoopFuture<RelayHTTPResponse>)
    }

    /// Opens `url` (`ws://` or `wss://host:port/path?query`) with a real RFC 6455 upgrade.
    ///
    /// - Parameters:
    ///   - url: The WebSocket URL.
    ///   - tls: How a `wss://` relay's certificate is checked.
    ///   - headers: Extra upgrade request headers, e.g. `("Origin", "https://app.example")`.
    ///   - eventLoopGroup: The group to run on; share one across many sockets.
    ///   - maxFrameSize: Largest inbound frame and reassembled message accepted, in bytes.
    ///   - autoReplyPings: Answer each inbound ping with a pong (the ping is still delivered as an event).
    ///   - receiveBufferSize: `SO_RCVBUF` to request before connecting; a small value makes a paused
    ///     reader (``pauseReading()``) back up the server quickly.
    ///   - connectTimeout: Deadline for the TCP connect plus the upgrade response.
    /// - Throws: ``RelayClientError/upgradeRejected(status:body:)`` for a non-101 answer,
    ///   ``RelayClientError/timedOut(_:)``, or NIO connection errors.
    package static func connect(
        to url: String,
        headers: [(String, String)] = [],
        tls: RelayTLS = .system,
        eventLoopGroup: any EventLoopGroup = ChannelConnector.defaultGroup,
        maxFrameSize: Int = 1 << 24,
        autoReplyPings: Bool = true,
        receiveBufferSize: Int? = nil,
        connectTimeout: Duration = .seconds(10)
    ) async throws -> RelayWebSocket {
        let endpoint = try RelayEndpoint.parse(url, kind: .webSocket)
        var requestHeaders = HTTPHeaders()
        if !headers.contains(where: { $0.0.lowercased() == "host" }) {
            requestHeaders.add(name: "Host", value: endpoint.hostHeader)
        }
        for (name, value) in headers { requestHeaders.add(name: name, value: value) }
        let requestHead = HTTPRequestHead(version: .http1_1, method: .GET, uri: endpoint.requestTarget, headers: requestHeaders)

        let inbox = RelayWebSocketInbox()
        let eventLoop = eventLoopGroup.next()
        let outcome = eventLoop.makePromise(of: UpgradeOutcome.self)
        let timer = eventLoop.scheduleTask(in: TimeAmount(connectTimeout)) {
            outcome.fail(RelayClientError.timedOut("WebSocket connect to \(url) after \(connectTimeout)"))
        }
        outcome.futureResult.whenComplete { _ in timer.cancel() }

        let channel: any Channel
        do {
            channel = try await ChannelConnector.connect(
                to: endpoint, tls: tls, group: eventLoop, timeout: connectTimeout, receiveBufferSize: receiveBufferSize
            ) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<UpgradeOutcome>(
                        maxFrameSize: maxFrameSize,
                        enableAutomaticErrorHandling: true
                    ) { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            let handler = RelayWebSocketFrameHandler(
                                inbox: inbox,
                                autoReplyPings: autoReplyPings,
                                maxMessageSize: maxFrameSize
                            )
                            try channel.pipeline.syncOperations.addHandler(handler)
                            return UpgradeOutcome.upgraded
                        }
                    }
                    let upgradeConfiguration = NIOTypedHTTPClientUpgradeConfiguration<UpgradeOutcome>(
                        upgradeRequestHead: requestHead,
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                let response = channel.eventLoop.makePromise(of: RelayHTTPResponse.self)
                                try channel.pipeline.syncOperations.addHandler(
                                    HTTPResponseCollector(promise: response, operation: "WebSocket upgrade of \(url)")
                                )
                                return UpgradeOutcome.rejected(response.futureResult)
                            }
                        }
                    )
                    var configuration = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: upgradeConfiguration)
                    // Frames the server sends right behind its 101 must reach the WebSocket decoder.
                    configuration.leftOverBytesStrategy = .forwardBytes
                    let upgraded = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: configuration
                    )
                    upgraded.cascade(to: outcome)
                    channel.closeFuture.whenComplete { _ in
                        outcome.fail(RelayClientError.connectionClosed("during the WebSocket upgrade of \(url)"))
                    }
                    return channel
                }
            }
        } catch {
            outcome.fail(error)
            throw error
        }

        do {
            switch try await outcome.futureResult.get() {
            case .upgraded:
                return RelayWebSocket(url: url, channel: channel, inbox: inbox)
            case .rejected(let responseFuture):
                let response = try await responseFuture.get()
                channel.close(promise: nil)
                throw RelayClientError.upgradeRejected(status: response.status, body: response.bodyText)
            }
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    // MARK: Sending

    /// Sends one text frame.
    ///
    /// Like every send, throws ``RelayClientError/connectionClosed(_:)`` once the connection is closed.
    package func sendText(_ text: String) async throws {
        try await write(opcode: .text, fin: true, payload: ByteBuffer(string: text), masked: true)
    }

    /// Sends one binary frame.
    package func sendBinary(_ bytes: [UInt8]) async throws {
        try await write(opcode: .binary, fin: true, payload: ByteBuffer(bytes: bytes), masked: true)
    }

    /// Sends a ping frame.
    package func sendPing(_ payload: [UInt8] = []) async throws {
        try await write(opcode: .ping, fin: true, payload: ByteBuffer(bytes: payload), masked: true)
    }

    /// Sends a pong frame.
    package func sendPong(_ payload: [UInt8] = []) async throws {
        try await write(opcode: .pong, fin: true, payload: ByteBuffer(bytes: payload), masked: true)
    }

    /// Sends a close frame with `code` and `reason`; the connection stays open until the server ends it
    /// (or ``close()`` is called). A close frame received afterwards is not echoed.
    package func sendClose(code: UInt16 = 1000, reason: String = "") async throws {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        payload.writeString(reason)
        _ = inbox.markCloseSent()
        try await write(opcode: .connectionClose, fin: true, payload: payload, masked: true)
    }

    /// Sends one frame exactly as described, for tests of fragmentation, oversized or malformed frames.
    ///
    /// - Parameters:
    ///   - opcode: Any 4-bit opcode, including continuation and reserved values.
    ///   - fin: The FIN bit.
    ///   - payload: The unmasked payload.
    ///   - masked: Mask the payload with a random key, as RFC 6455 requires of clients; pass
    ///     `false` to test how the server treats an unmasked frame.
    package func sendRawFrame(opcode: RelayWebSocketOpcode, fin: Bool, payload: [UInt8], masked: Bool = true) async throws {
        let nioOpcode = WebSocketOpcode(encodedWebSocketOpcode: opcode.rawValue)!
        if nioOpcode == .connectionClose { _ = inbox.markCloseSent() }
        try await write(opcode: nioOpcode, fin: fin, payload: ByteBuffer(bytes: payload), masked: masked)
    }

    private func write(opcode: WebSocketOpcode, fin: Bool, payload: ByteBuffer, masked: Bool) async throws {
        let frame = WebSocketFrame(fin: fin, opcode: opcode, maskKey: masked ? .random() : nil, data: payload)
        do {
            try await channel.writeAndFlush(frame).get()
        } catch ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed {
            let cause = inbox.failure.map { " (\($0))" } ?? ""
            throw RelayClientError.connectionClosed("cannot send a \(opcode) frame on \(url): the connection is closed\(cause)")
        }
    }

    // MARK: Receiving

    /// The next inbound event, or `nil` if none arrives within `timeout` (the caller decides whether
    /// that is a failure). Events already buffered are returned immediately, even with a zero timeout.
    /// After the connection ends, returns `.closed` forever.
    ///
    /// - Throws: `CancellationError` if the task is cancelled while waiting;
    ///   ``RelayClientError/concurrentReceive`` if another task is already waiting on this socket.
    package func next(timeout: Duration) async throws -> RelayWebSocketEvent? {
        try await inbox.next(timeout: timeout, eventLoop: channel.eventLoop)
    }

    /// The next text message, skipping pings and pongs.
    ///
    /// - Throws: ``RelayClientError/timedOut(_:)`` when nothing arrives in time, and
    ///   ``RelayClientError/unexpectedEvent(expected:received:)`` for a close frame, the end of the
    ///   connection or a binary message.
    package func nextText(timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - ContinuousClock.now
            guard let event = try await next(timeout: max(remaining, .zero)) else {
                throw RelayClientError.timedOut("no text frame on \(url) within \(timeout)")
            }
            switch event {
            case .text(let text):
                return text
            case .ping, .pong:
                continue
            case .binary, .close, .closed:
                var expected = "a text frame"
                if case .closed = event, let failure = failureDescription { expected += " (transport error: \(failure))" }
                throw RelayClientError.unexpectedEvent(expected: expected, received: event.description)
            }
        }
    }

    /// The next text message (see ``nextText(timeout:)``) parsed as a JSON object.
    ///
    /// - Throws: what ``nextText(timeout:)`` throws, ``RelayClientError/invalidJSON(reason:text:)``,
    ///   or ``RelayClientError/unexpectedJSON(expected:received:)`` when it is not an object.
    package func nextJSON(timeout: Duration) async throws -> JSONValue {
        let text = try await nextText(timeout: timeout)
        let json = try parseJSON(text.utf8)
        guard case .object = json else { throw RelayClientError.unexpectedJSON(expected: "a JSON object", received: text) }
        return json
    }

    /// Reads events until none arrives for `idle` (or until the connection ends) and returns them.
    ///
    /// A terminal `.closed` is included once. `limit` bounds the total time spent draining.
    package func drain(idle: Duration = .milliseconds(50), limit: Duration = .seconds(30)) async throws -> [RelayWebSocketEvent] {
        let deadline = ContinuousClock.now + limit
        var events: [RelayWebSocketEvent] = []
        while ContinuousClock.now < deadline {
            let wait = min(idle, deadline - ContinuousClock.now)
            guard let event = try await next(timeout: wait) else { break }
            events.append(event)
            if case .closed = event { break }
        }
        return events
    }

    /// Waits until the connection ends, skipping everything else, and returns the events skipped.
    ///
    /// - Throws: ``RelayClientError/timedOut(_:)`` if the connection is still open after `timeout`.
    package func waitForClosed(timeout: Duration) async throws -> [RelayWebSocketEvent] {
        let deadline = ContinuousClock.now + timeout
        var skipped: [RelayWebSocketEvent] = []
        while true {
            let remaining = deadline - ContinuousClock.now
            guard let event = try await next(timeout: max(remaining, .zero)) else {
                throw RelayClientError.timedOut("\(url) still open after \(timeout); saw \(skipped)")
            }
            if case .closed = event { return skipped }
            skipped.append(event)
        }
    }

    // MARK: Flow control and lifecycle

    /// Stops reading from the socket (`autoRead` off), so the server's writes back up, as with a
    /// phone that stopped reading. Frames already read stay in the buffer. If the server ends the
    /// connection meanwhile, the bytes it had sent are still read and delivered before `.closed`.
    /// A no-op once the connection is closed.
    package func pauseReading() async throws {
        try await setAutoRead(false)
    }

    /// Resumes reading from the socket (`autoRead` on). A no-op once the connection is closed, so a
    /// test can resume after the server cut a paused reader off and then read what arrived.
    package func resumeReading() async throws {
        try await setAutoRead(true)
    }

    private func setAutoRead(_ enabled: Bool) async throws {
        do {
            try await channel.setOption(ChannelOptions.autoRead, value: enabled).get()
        } catch ChannelError.ioOnClosedChannel {
            return
        }
    }

    /// Whether the TCP connection is still open.
    package var isOpen: Bool { channel.isActive }

    /// The first transport or protocol error seen on this connection, if any.
    package var failureDescription: String? { inbox.failure }

    /// Sends a close frame with code 1000 (unless one was already sent and the connection is open),
    /// then closes the TCP connection. Never throws; safe to call repeatedly.
    package func close() async {
        if channel.isActive, !inbox.markCloseSent() {
            var payload = ByteBuffer()
            payload.writeInteger(UInt16(1000))
            let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: payload)
            try? await channel.writeAndFlush(frame).get()
        }
        try? await channel.close().get()
    }
}

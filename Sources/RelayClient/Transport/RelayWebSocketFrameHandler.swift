// The NIO handler behind a RelayWebSocket: reassembles messages, answers pings, feeds the inbox.

import NIOCore
import NIOWebSocket

/// Turns decoded frames into ``RelayWebSocketEvent``s in arrival order.
///
/// Runs on its channel's event loop only. It pushes into the `Sendable` inbox; it never blocks and
/// never spawns tasks. Data frames are reassembled across continuations up to `maxMessageSize`.
/// A ping is delivered as an event and, when `autoReplyPings` is on, answered with a masked pong
/// carrying the same payload. A close frame is delivered and, unless the client already sent one,
/// echoed with the same status code (RFC 6455 §5.5.1); the server then ends the TCP connection.
final class RelayWebSocketFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let inbox: RelayWebSocketInbox
    private let autoReplyPings: Bool
    private let maxMessageSize: Int
    private var fragmentOpcode: WebSocketOpcode?
    private var fragments = ByteBuffer()

    init(inbox: RelayWebSocketInbox, autoReplyPings: Bool, maxMessageSize: Int) {
        self.inbox = inbox
        self.autoReplyPings = autoReplyPings
        self.maxMessageSize = maxMessageSize
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            guard fragmentOpcode == nil else {
                return fail(context: context, "new data frame while a fragmented message is open")
            }
            if frame.fin {
                deliver(opcode: frame.opcode, payload: frame.unmaskedData)
            } else {
                fragmentOpcode = frame.opcode
                fragments.clear()
                var payload = frame.unmaskedData
                fragments.writeBuffer(&payload)
            }
        case .continuation:
            guard let opcode = fragmentOpcode else {
                return fail(context: context, "continuation frame without a message start")
            }
            var payload = frame.unmaskedData
            guard fragments.readableBytes + payload.readableBytes <= maxMessageSize else {
                return fail(context: context, "reassembled message exceeds \(maxMessageSize) bytes")
            }
            fragments.writeBuffer(&payload)
            if frame.fin {
                fragmentOpcode = nil
                deliver(opcode: opcode, payload: fragments)
                fragments = ByteBuffer()
            }
        case .ping:
            let payload = frame.unmaskedData
            inbox.push(.ping(Array(payload.readableBytesView)))
            if autoReplyPings, !inbox.closeSent {
                let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: payload)
                context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
            }
        case .pong:
            inbox.push(.pong(Array(frame.unmaskedData.readableBytesView)))
        case .connectionClose:
            var payload = frame.unmaskedData
            let code = payload.readInteger(as: UInt16.self)
            let reason = payload.readString(length: payload.readableBytes) ?? ""
            inbox.push(.close(code: code, reason: reason))
            if !inbox.markCloseSent() {
                var echo = context.channel.allocator.buffer(capacity: 2)
                if let code { echo.writeInteger(code) }
                let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: echo)
                context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
            }
        default:
            fail(context: context, "unknown opcode \(frame.opcode)")
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // The upgrade completes asynchronously: a server that answered and closed at once (an
        // auth timeout on a busy machine) may have ended the connection before this handler was
        // added, and then no channelInactive reaches it.
        if !context.channel.isActive { inbox.finish() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        inbox.recordFailure(String(describing: error))
        context.close(promise: nil)
    }

    private func deliver(opcode: WebSocketOpcode, payload: ByteBuffer) {
        if opcode == .text {
            inbox.push(.text(String(buffer: payload)))
        } else {
            inbox.push(.binary(Array(payload.readableBytesView)))
        }
    }

    private func fail(context: ChannelHandlerContext, _ reason: String) {
        inbox.recordFailure(RelayClientError.protocolViolation(reason).description)
        context.close(promise: nil)
    }
}

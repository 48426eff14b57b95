// The floor the relay is measured against: a bare SwiftNIO WebSocket forwarder. Two sockets that
// upgrade on the same `/floor/<key>` are joined, and every data frame one sends reaches the other
// unparsed. No auth, no JSON, no limits, no queue of its own: what any WebSocket relay must spend
// per message on this machine (syscalls, framing, unmasking, the event loops' hand-offs).
//
// `HOST` and `PORT` as the relay reads them; `GET /healthz` answers 200 so the harness can wait
// for it as it waits for a relay node. Run by `relay-load floor`, never deployed.

import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The sockets that upgraded with a key no other socket holds yet.
final class Lobby: Sendable {
    private let waiting = Mutex<[String: ForwardingHandler.Side]>([:])

    /// Joins `side` with the socket waiting on `key`, or leaves it waiting.
    func arrive(key: String, side: ForwardingHandler.Side) {
        let partner: ForwardingHandler.Side? = waiting.withLock { waiting in
            if let partner = waiting.removeValue(forKey: key) { return partner }
            waiting[key] = side
            return nil
        }
        guard let partner else { return }
        // Each side learns its peer on its own event loop, before any frame the peer forwards
        // reaches it (tasks from one thread run in order).
        side.connect(to: partner.channel)
        partner.connect(to: side.channel)
    }

    /// Forgets a socket that closed while it waited.
    func leave(key: String, channel: any Channel) {
        waiting.withLock { waiting in
            if waiting[key]?.channel === channel { waiting[key] = nil }
        }
    }
}

/// One upgraded socket: unmasks each data frame with NIO's own `unmaskedData` (a byte at a time) and writes it,
/// flushed, to the peer's channel (NIO hops to the peer's event loop when it is another one).
final class ForwardingHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// What the lobby holds of a socket: its channel, and a way to hand it its peer.
    struct Side: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<ForwardingHandler>

        func connect(to peer: any Channel) {
            let handler = self.handler
            channel.eventLoop.execute { handler.value.peer = peer }
        }
    }

    private let key: String
    private let lobby: Lobby
    private var peer: (any Channel)?

    init(key: String, lobby: Lobby) {
        self.key = key
        self.lobby = lobby
    }

    func handlerAdded(context: ChannelHandlerContext) {
        lobby.arrive(key: key, side: Side(channel: context.channel, handler: NIOLoopBound(self, eventLoop: context.eventLoop)))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            peer?.writeAndFlush(WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData), promise: nil)
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        lobby.leave(key: key, channel: context.channel)
        peer?.close(promise: nil)
        peer = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Plain HTTP on the same port: `GET /healthz` → 200, anything else → 404.
final class HealthHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var status: HTTPResponseStatus = .notFound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.uri == "/healthz" ? .ok : .notFound
        case .body:
            break
        case .end:
            let body = ByteBuffer(string: status == .ok ? "ok\n" : "not found\n")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// The key of a `/floor/<key>` request target, or nil for any other target.
func floorKey(_ uri: String) -> String? {
    let prefix = "/floor/"
    guard uri.hasPrefix(prefix), uri.count > prefix.count else { return nil }
    return String(uri.dropFirst(prefix.count))
}

let environment = { (name: String) -> String? in getenv(name).map { String(cString: $0) } }
let host = environment("HOST") ?? "127.0.0.1"
guard let port = Int(environment("PORT") ?? "8788") else {
    print("relay-floor: PORT must be a number")
    exit(2)
}
let lobby = Lobby()
let group = MultiThreadedEventLoopGroup.singleton

let upgrader = NIOWebSocketServerUpgrader(
    maxFrameSize: 1 << 20,
    shouldUpgrade: { channel, head in
        channel.eventLoop.makeSucceededFuture(floorKey(head.uri) == nil ? nil : HTTPHeaders())
    },
    upgradePipelineHandler: { channel, head in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ForwardingHandler(key: floorKey(head.uri)!, lobby: lobby))
        }
    })

let server = try await ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                    context.pipeline.removeHandler(name: "health", promise: nil)
                }))
            try channel.pipeline.syncOperations.addHandler(HealthHandler(), name: "health")
        }
    }
    .bind(host: host, port: port)
    .get()
print("relay-floor listening on \(host):\(server.localAddress?.port ?? port)")
try await server.closeFuture.get()

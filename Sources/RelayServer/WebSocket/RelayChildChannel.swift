// The server's child channel: each accepted connection admitted, then served by our handlers.

import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import RelayProtocol

/// The server's child channel: every accepted connection is admitted against
/// `MAX_HTTP_CONNECTIONS`, then served by our own HTTP/1.1 connection handler
/// (``HTTPConnectionHandler``), which answers HTTP through ``HTTPRoutes`` and upgrades `GET /ws`
/// onto our NIO ``WebSocketHandler``. Hummingbird's server owns the listener and the graceful
/// quiesce. The WebSocket side is SwiftNIO rather than HummingbirdWebSocket because the relay
/// needs what that layer hides: inbound Pings and Pongs (heartbeat credit), a non-blocking bounded
/// outbound queue with a slow-consumer verdict, and the close code of every termination; and the
/// HTTP side is ours because an upgrade must be honoured on any request of a keep-alive
/// connection, with the limits and timeouts of ``HTTPLimits``.
struct RelayChildChannel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let settings: HTTPConnectionSettings
    /// The relay's own TLS (`TLS_CERT_FILE`), in front of everything else on the connection.
    let tls: ServerTLS?
    /// Every connection accepted and not yet closed; the shutdown waits for it to reach zero.
    let openChannels = OpenChannels()

    /// Reads start small and grow with what a socket sends (64 B to 64 KiB): an idle socket keeps
    /// its last receive buffer, and NIO's 2 KiB default made that a quarter of an idle socket's
    /// memory.
    static let receiveBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65_536)

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            openChannels.track(channel)
            guard settings.gate.tryOpen() else {
                channel.close(promise: nil)
                return Value(channel: channel)
            }
            try channel.syncOptions?.setOption(.recvAllocator, value: Self.receiveBuffers)
            // The HTTP timers start with the connection, so a client that stalls the handshake is
            // closed by the same header deadline as one that stalls its request.
            if let tls { try channel.pipeline.syncOperations.addHandler(tls.makeHandler()) }
            let decoder = settings.makeDecoder()
            let encoder = HTTPResponseEncoder()
            let connection = HTTPConnectionHandler(settings: settings, decoder: decoder, encoder: encoder)
            let meter = HTTPHeadMeter(connection: connection)
            connection.attach(meter: meter)
            do {
                try channel.pipeline.syncOperations.addHandlers([meter, decoder, encoder, connection])
            } catch {
                settings.gate.release()
                throw error
            }
            return Value(channel: channel)
        }
    }

    /// Returns at once: the connection lives on its event loop, not in a task (see ``OpenChannels``).
    func handle(value: Value, logger: Logger) async {}

    /// The percent-decoded `token` query parameter of a legacy `/ws?token=` upgrade: `+` is a space
    /// (a form-encoded query), a decoded NUL is kept, and a value that does not decode (a bad
    /// escape, not UTF-8) counts as no token.
    static func queryToken(_ uri: String) -> String? {
        guard let query = uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.first == "token", parts.count == 2 else { continue }
            return try? PercentDecoding.decode(parts[1], plusIsSpace: true, allowsNUL: true)
        }
        return nil
    }
}

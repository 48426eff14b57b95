// The listener as a service: HTTP and WebSocket traffic, then the graceful drain of DECISIONS 1.

import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import RelayCore
import RelayProtocol
import ServiceLifecycle

/// The HTTP/WebSocket listener. It opens once the node has started, and on graceful shutdown
/// readiness fails, the listener closes, and every socket is sent `server_shutdown` + close 1012 in
/// staggered batches over `DRAIN_PERIOD_MS`; `run` returns when the last connection has closed.
struct HTTPServerService: Service {
    let relay: Relay
    let configuration: RelayConfiguration
    let address: String
    let child: RelayChildChannel
    let health: HealthState
    let started: StartupSignal
    let onListening: @Sendable (Int) async -> Void
    let logger: Logger

    func run() async throws {
        guard await started.wait() else { return }
        let logger = self.logger, relay = self.relay, onListening = self.onListening, child = self.child
        // The node's own loops (EVENT_LOOP_THREADS), shut down once the server has stopped.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        // Hummingbird's own info line ("Server started and listening…") repeats our `listening`
        // in another naming scheme: the server logs from notice up.
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .notice)
        let server = Server(
            childChannelSetup: child,
            configuration: ServerConfiguration(address: .hostname(address, port: configuration.port)),
            onServerRunning: { channel in
                // With PORT=0 this is the port the system chose.
                let port = channel.localAddress?.port ?? 0
                logger.info("listening", metadata: [
                    "address": "\(channel.localAddress?.description ?? "?")", "port": "\(port)",
                    "persistence": "\(relay.persistenceEnabled ? "shared" : "memory")",
                    "bus": "\(relay.crossInstanceBusEnabled ? "enabled" : "disabled")",
                ])
                await onListening(port)
            },
            eventLoopGroup: group, logger: serverLogger)
        let health = self.health, period = configuration.drainPeriodMillis
        let outcome: Result<Void, any Error>
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    try await server.run()
                    // The listener has closed; the drain is still closing the sockets.
                    await child.openChannels.waitUntilAllClosed()
                }
                group.addTask {
                    try await gracefulShutdown()
                    health.startDraining()
                    logger.notice("draining", metadata: ["drain_period_ms": "\(period)"])
                    await Self.drain(relay: relay, periodMillis: period, logger: logger)
                }
            }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        try? await group.shutdownGracefully()
        try outcome.get()
    }

    /// Sends every local socket `server_shutdown` in evenly spaced batches over `periodMillis`.
    static func drain(relay: Relay, periodMillis: Int64, logger: Logger) async {
        let sockets = relay.localConnections()
        guard !sockets.isEmpty else { return }
        // Batches of at least `minimumBatch` sockets, at most one every 250 ms: a few sockets go at
        // once, thousands are spread over the period so their reconnects do not arrive together.
        let minimumBatch = 100
        let batches = max(1, min((sockets.count + minimumBatch - 1) / minimumBatch, Int(periodMillis / 250)))
        let perBatch = (sockets.count + batches - 1) / batches
        let pause = periodMillis / Int64(batches)
        for (index, start) in stride(from: 0, to: sockets.count, by: perBatch).enumerated() {
            if index > 0 { try? await Task.sleep(for: .milliseconds(pause)) }
            for socket in sockets[start..<min(start + perBatch, sockets.count)] {
                relay.stats.disconnect(.serverShutdown)
                socket.terminate(.serverShutdown)
            }
        }
        logger.notice("drained_sockets", metadata: ["count": "\(sockets.count)", "batches": "\(batches)"])
    }
}

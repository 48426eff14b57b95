import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import RelayCore
import RelayProtocol
import RelayRedis
import ServiceLifecycle

/// One relay node as a service-lifecycle `Service`: the HTTP/WebSocket server, the sweeper, and
/// the graceful drain of DECISIONS 1 (readiness fails, the listener closes, sockets are sent
/// `server_shutdown` + close 1012 in staggered batches over `DRAIN_PERIOD_MS`, then `run` returns).
public struct RelayApplication: Service {
    public let configuration: RelayConfiguration
    public let relay: Relay
    public let health = HealthState()
    let logger: Logger
    let onListening: (@Sendable (Int) async -> Void)?
    let dependencies: ClusterDependencies

    /// Builds a node: alone with in-memory state, or a cluster node when the configuration names
    /// Redis and NATS. `store` and `bus` override what the configuration says (tests run several
    /// nodes in one process that way). `onListening` receives the bound port (useful with `PORT=0`).
    public init(
        configuration: RelayConfiguration, logger: Logger, store: (any StateStore)? = nil, bus: (any ClusterBus)? = nil,
        onListening: (@Sendable (Int) async -> Void)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        self.onListening = onListening
        // The core creates its counters at init: the metrics backend must exist first.
        _ = RelayMetricsSystem.registry
        let dependencies = ClusterDependencies.make(configuration, logger: logger)
        self.dependencies = dependencies
        self.relay = Relay(
            configuration: configuration.core, store: store ?? dependencies.store ?? InMemoryStateStore(),
            bus: bus ?? dependencies.bus, logger: logger)
        dependencies.register(with: health)
    }

    public func run() async throws {
        let address = try HostValidation.resolve(host: configuration.host, port: configuration.port)
        // Give Redis a moment so a normal start restores at once instead of logging a retry.
        _ = await dependencies.redis?.waitUntilAvailable(timeout: .seconds(2))
        try await relay.start()
        let metrics = MetricsExporter(relay: relay, health: health)
        let routes = HTTPRoutes(relay: relay, configuration: configuration, health: health, metrics: metrics, logger: logger)
        let settings = WebSocketSettings(
            relay: relay, maxMessageBytes: configuration.maxWSMessageBytes,
            maxMessagesPerMinute: configuration.maxWSMessagesPerMinute, authTimeoutMillis: configuration.wsAuthTimeoutMillis,
            heartbeatIntervalMillis: configuration.effectiveHeartbeatIntervalMillis,
            heartbeatTimeoutMillis: configuration.effectiveHeartbeatTimeoutMillis,
            outboundCapacity: configuration.effectiveOutboundQueue,
            writeStallTimeoutMillis: configuration.writeStallTimeoutMillis, logger: logger)
        let child = RelayChildChannel(settings: HTTPConnectionSettings(
            limits: configuration.http, maxBodyBytes: configuration.maxJSONBytes, routes: routes, webSocket: settings,
            trustedProxyHops: configuration.trustedProxyHops, allowLegacyQueryToken: configuration.allowLegacyQueryTokenAuth,
            gate: HTTPConnectionGate(limit: configuration.http.maxConnections), logger: logger))
        let logger = self.logger
        let onListening = self.onListening
        let relay = self.relay, health = self.health, configuration = self.configuration
        let server = Server(
            childChannelSetup: child,
            configuration: ServerConfiguration(address: .hostname(address.ipAddress ?? configuration.host, port: configuration.port)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("relay listening", metadata: [
                    "address": "\(channel.localAddress?.description ?? "?")",
                    "persistence": "\(relay.persistenceEnabled ? "shared" : "memory")",
                    "bus": "\(relay.crossInstanceBusEnabled ? "enabled" : "disabled")",
                ])
                await onListening?(port)
            },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)

        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.run() }
                group.addTask {
                    await cancelWhenGracefulShutdown { await relay.runSweeper(intervalMillis: configuration.sweepIntervalMillis) }
                }
                group.addTask {
                    try await gracefulShutdown()
                    health.startDraining()
                    logger.notice("draining", metadata: ["drain_period_ms": "\(configuration.drainPeriodMillis)"])
                    await Self.drain(relay: relay, periodMillis: configuration.drainPeriodMillis, logger: logger)
                }
            }
        } catch {
            await dependencies.shutdown()
            throw error
        }
        await dependencies.shutdown()
        logger.notice("relay stopped")
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
        logger.notice("drained sockets", metadata: ["count": "\(sockets.count)", "batches": "\(batches)"])
    }
}

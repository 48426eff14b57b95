// One relay node as a service: its dependencies, its own work and its listener, started and stopped in order.

import Logging
import NIOCore
import RelayCore
import RelayProtocol
import RelayRedis
import ServiceLifecycle

/// One relay node as a service-lifecycle `Service`. `run` runs a service group of, in order: the
/// Redis connection, the NATS bus, the relay's own work (restore, sweeps, reloads) and the
/// HTTP/WebSocket listener. They start together (the listener opens once the node has restored its
/// sessions) and on graceful shutdown stop in reverse: the listener drains first (DECISIONS 1),
/// then the relay's work is cancelled and awaited, then the bus and the store close.
public struct RelayApplication: Service {
    /// The settings this node runs with.
    public let configuration: RelayConfiguration
    /// The node's logic.
    public let relay: Relay
    /// What `/readyz` and `/healthz` report.
    public let health = HealthState()
    let logger: Logger
    let onListening: (@Sendable (Int) async -> Void)?
    let dependencies: ClusterDependencies
    /// Trace export, when `OTEL_EXPORTER_OTLP_ENDPOINT` asks for it.
    let tracing: TracingBackend?
    private let listeningPort = ListeningPort()

    /// Builds a node: alone with in-memory state, or a cluster node when the configuration names
    /// Redis and NATS. `store` and `bus` override what the configuration says (tests run several
    /// nodes in one process that way; the caller then owns them). `clock` is what the core measures
    /// expiries, budgets, sweeps and approval timeouts by. `onListening` receives the bound port
    /// (the one the system chose with `PORT=0`).
    public init(
        configuration: RelayConfiguration, logger: Logger, store: (any StateStore)? = nil, bus: (any ClusterBus)? = nil,
        clock: any RelayClock = SystemClock(), onListening: (@Sendable (Int) async -> Void)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        self.onListening = onListening
        // The core creates its counters at init: the metrics backend must exist first.
        _ = RelayMetricsSystem.registry
        let dependencies = ClusterDependencies.make(configuration, logger: logger)
        self.dependencies = dependencies
        var tracing: TracingBackend?
        if let settings = configuration.tracing {
            do {
                tracing = try TracingBackend.make(settings, logger: logger)
                logger.notice("tracing_enabled url=\(settings.tracesURL) protocol=\(settings.wireProtocol) service=\(settings.serviceName)")
            } catch {
                logger.error("tracing_disabled reason=\"\(error)\"")
            }
        }
        self.tracing = tracing
        self.relay = Relay(
            configuration: configuration.core, store: store ?? dependencies.store ?? InMemoryStateStore(),
            bus: bus ?? dependencies.bus, logger: logger, clock: clock, tracer: tracing?.tracer)
        dependencies.register(with: health)
    }

    /// The port the listener is bound to, once it is (with `PORT=0`, the one the system chose).
    public var boundPort: Int? { listeningPort.value }

    /// Runs the node's service group until graceful shutdown has drained and stopped every
    /// service, in the order the type's comment gives. Throws when the host cannot be bound, the
    /// bus configuration is refused, or a service fails (the others are then cancelled).
    public func run() async throws {
        let address = try HostValidation.resolve(host: configuration.host, port: configuration.port)
        let tls = try configuration.tls.map { files throws(ConfigurationError) in try ServerTLS(files: files) }
        let routes = HTTPRoutes(
            relay: relay, configuration: configuration, health: health, metrics: MetricsExporter(relay: relay, health: health),
            logger: logger)
        let settings = WebSocketSettings(
            relay: relay, maxMessageBytes: configuration.maxWSMessageBytes,
            maxMessagesPerMinute: configuration.maxWSMessagesPerMinute, authTimeoutMillis: configuration.wsAuthTimeoutMillis,
            heartbeatIntervalMillis: configuration.effectiveHeartbeatIntervalMillis,
            heartbeatTimeoutMillis: configuration.effectiveHeartbeatTimeoutMillis,
            outboundCapacity: configuration.effectiveOutboundQueue,
            writeStallTimeoutMillis: configuration.writeStallTimeoutMillis, logger: logger)
        let child = RelayChildChannel(
            settings: HTTPConnectionSettings(
                limits: configuration.http, maxBodyBytes: configuration.maxJSONBytes, routes: routes, webSocket: settings,
                trustedProxyHops: configuration.trustedProxyHops, allowLegacyQueryToken: configuration.allowLegacyQueryTokenAuth,
                gate: HTTPConnectionGate(limit: configuration.http.maxConnections), logger: logger),
            tls: tls)

        let started = StartupSignal()
        let relay = self.relay, configuration = self.configuration, listeningPort = self.listeningPort
        let onListening = self.onListening
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // First, so it stops last: spans of the drain are exported before the exporter goes.
        if let tracing { services.append(.init(service: tracing.service)) }
        if let redis = dependencies.redis {
            // A promoted replica may be behind what this node read from the old master.
            redis.onServerChange { [weak relay] in relay?.storeWasReplaced() }
            services.append(.init(service: RedisConnectionService(connection: redis)))
        }
        if let writes = dependencies.redisWrites { services.append(.init(service: RedisConnectionService(connection: writes))) }
        if let bus = dependencies.bus { services.append(.init(service: ClusterBusService(bus: bus))) }
        if let tls { services.append(.init(service: TLSReloadService(tls: tls, logger: logger))) }
        services.append(.init(service: RelayWorkService(
            relay: relay, redis: [dependencies.redis, dependencies.redisWrites].compactMap { $0 }, sweepIntervalMillis: configuration.sweepIntervalMillis, started: started)))
        services.append(.init(service: HTTPServerService(
            relay: relay, configuration: configuration, address: address.ipAddress ?? configuration.host, child: child,
            health: health, started: started,
            onListening: { port in
                listeningPort.set(port)
                // With PORT=0 the defaults name the listener's port, which only now is known.
                if let address = configuration.listeningAddress(port: port) {
                    relay.useListeningAddress(defaultWebSocketURL: address.defaultWebSocketURL, origins: address.origins)
                }
                await onListening?(port)
            },
            logger: logger)))
        try await ServiceGroup(configuration: .init(services: services, logger: logger)).run()
        logger.notice("stopped")
    }
}

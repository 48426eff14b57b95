// The Redis connection and the NATS bus as services: up while the node runs, closed after it drained.

import RelayNATS
import RelayRedis
import ServiceLifecycle

/// The Redis connection: its thread starts in `run`, and it closes on graceful shutdown, after
/// every service listed after it (the relay's work and the listener) has stopped.
struct RedisConnectionService: Service {
    let connection: RedisConnection

    func run() async throws {
        connection.start()
        try? await gracefulShutdown()
        await connection.shutdown()
    }
}

/// The NATS bus: the relay's work starts it (the relay owns its handler); it is closed on graceful
/// shutdown, after the relay's work has stopped and before the Redis connection.
struct ClusterBusService: Service {
    let bus: NATSClusterBus

    func run() async throws {
        try? await gracefulShutdown()
        await bus.shutdown()
    }
}

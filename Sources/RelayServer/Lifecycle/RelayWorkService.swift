// The relay's own background work as a service: restore, join the bus, then sweep and run jobs.

import Logging
import RelayCore
import RelayRedis
import ServiceLifecycle

/// Starts the node (sessions restored from the store, bus joined), tells the listener it may
/// open, then runs the node's sweeps and jobs until graceful shutdown, when they are cancelled and
/// awaited.
struct RelayWorkService: Service {
    let relay: Relay
    /// The Redis connections (reads, and record writes when they have their own).
    let redis: [RedisConnection]
    let sweepIntervalMillis: Int64
    let started: StartupSignal

    func run() async throws {
        // Give Redis a moment so a normal start restores at once instead of logging a retry.
        for connection in redis { _ = await connection.waitUntilAvailable(timeout: .seconds(2)) }
        try await relay.start()
        started.fire()
        let relay = self.relay, interval = sweepIntervalMillis
        await cancelWhenGracefulShutdown { await relay.runBackgroundWork(sweepIntervalMillis: interval) }
    }
}

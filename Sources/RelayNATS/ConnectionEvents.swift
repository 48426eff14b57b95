// Connectivity as the core hears it, reported in order from every connection's callbacks.

import CNats
import Logging
import Synchronization

/// Connectivity as the core hears it, fed by every connection's callbacks.
final class ConnectionEvents: Sendable {
    private let connectivity: @Sendable (Bool) -> Void
    let metrics: NATSBusMetrics
    let logger: Logger
    let limiter: LogRateLimiter
    private let connected = Atomic<Bool>(false)
    /// Held while a state change is decided and reported, so reports reach the core in the order
    /// the changes happened; the value is true once the bus stops reporting.
    private let reporting = Mutex<Bool>(false)

    init(connectivity: @escaping @Sendable (Bool) -> Void, metrics: NATSBusMetrics, logger: Logger, limiter: LogRateLimiter) {
        self.connectivity = connectivity
        self.metrics = metrics
        self.logger = logger
        self.limiter = limiter
    }

    /// Whether the connection is up, as last reported.
    var isConnected: Bool { connected.load(ordering: .acquiring) }

    /// Reports `up` if it changes the state and the bus is not stopped; true when reported.
    @discardableResult
    func report(_ up: Bool) -> Bool {
        reporting.withLock { stopped in
            guard !stopped, connected.load(ordering: .relaxed) != up else { return false }
            connected.store(up, ordering: .releasing)
            connectivity(up)
            return true
        }
    }

    /// After a synchronous connect: reports up only if libnats still says connected. Checked under
    /// the reporting lock, so a disconnect that races in is reported after this, not lost before it.
    func reportConnected(_ connection: OpaquePointer) {
        reporting.withLock { stopped in
            guard !stopped, !connected.load(ordering: .relaxed),
                natsConnection_Status(connection) == NATS_CONN_STATUS_CONNECTED
            else { return }
            connected.store(true, ordering: .releasing)
            connectivity(true)
        }
    }

    /// No more connectivity reports (the bus is shutting down).
    func stop() {
        reporting.withLock { stopped in
            stopped = true
            connected.store(false, ordering: .releasing)
        }
    }
}

// The ClusterBus over NATS: one publish thread per node, deliveries on libnats's threads.

import Logging
import RelayCore
import RelayProtocol
import Synchronization

/// Connects relay nodes through a NATS server (PROTOCOL §6.3–§6.7) with signed, replay-checked
/// envelopes (§6.5).
///
/// Threads: ``publish(_:)`` and ``setSubscribed(_:sessionID:)`` only append to a FIFO. One
/// dedicated thread (not Swift's cooperative pool: libnats calls block) connects, encodes, signs
/// and publishes in FIFO order, subscribes and unsubscribes, retries failed subscriptions every
/// second, and finally closes the connection. Received messages arrive on libnats's delivery
/// threads, one subscription's messages in order on one thread, and go through the receive
/// pipeline straight to the core's handler there.
public final class NATSClusterBus: ClusterBus {
    /// This node's id, new per process; the `source_instance_id` of what it publishes.
    public let instanceID: String
    /// The settings this bus was made with.
    public let configuration: NATSClusterBusConfiguration

    private let logger: Logger
    private let metrics = NATSBusMetrics()
    private let limiter = LogRateLimiter()
    private let queue = WorkQueue<BusJob>()
    private let wanted = WantedSessions()
    private let lifecycle = BusLifecycle()
    private let running = Mutex<(events: ConnectionEvents, inbound: Inbound)?>(nil)
    /// For tests: failures to inject.
    let faults = FaultInjection()

    /// A bus with `configuration`. Nothing connects before ``start(handler:connectivity:)``, which
    /// also validates the configuration.
    public init(configuration: NATSClusterBusConfiguration, logger: Logger = Logger(label: "relay.nats")) {
        self.configuration = configuration
        self.logger = logger
        self.instanceID = Identifiers.shortID()
    }

    deinit {
        // Without a shutdown, the thread still closes the connection once it sees the queue closed.
        queue.close()
    }

    /// Queues `envelope` for its subject; returns at once. Envelopes leave in the order queued.
    public func publish(_ envelope: BusEnvelope) {
        queue.push(.publish(envelope))
    }

    /// Subscribes to (or unsubscribes from) the session's subject, asynchronously, on the bus thread.
    public func setSubscribed(_ subscribed: Bool, sessionID: String) {
        if wanted.set(subscribed, sessionID: sessionID) { queue.push(.reconcile(sessionID: sessionID)) }
    }

    /// Session subjects this node wants (subscribed, or being subscribed).
    public var subscriptionCount: Int { wanted.count }

    /// Whether the connection to a NATS server is up.
    public var isConnected: Bool { running.withLock { $0?.events }?.isConnected ?? false }

    /// What this bus has counted so far.
    public var statistics: NATSClusterBusStatistics { metrics.snapshot }

    /// Subscriptions libnats has not finished with (each still holds the receiving side alive).
    var subscriptionsNotCompleted: Int { running.withLock { $0?.inbound }?.subscriptionsNotCompleted ?? 0 }

    /// Connects and subscribes to the control subject. Does not fail when no server answers yet:
    /// libnats keeps trying and `connectivity(true)` says when it connected. Throws
    /// ``NATSConfigurationError`` for an invalid configuration, ``NATSBusError`` for settings
    /// libnats refuses (e.g. an unreadable CA file) and when called a second time.
    public func start(
        handler: @escaping @Sendable (BusEnvelope) -> Void, connectivity: @escaping @Sendable (Bool) -> Void
    ) async throws {
        try configuration.validate()
        guard lifecycle.beginStart() else { throw NATSBusError("NATS bus: start called twice or after shutdown") }
        let events = ConnectionEvents(connectivity: connectivity, metrics: metrics, logger: logger, limiter: limiter)
        var configuration = configuration
        configuration.connectionName = "\(configuration.connectionName) \(instanceID)"
        let pipeline = ReceivePipeline(
            instanceID: instanceID,
            signer: EnvelopeSigner(secret: configuration.secret, previousSecret: configuration.previousSecret),
            replayWindowMillis: configuration.replayWindowMillis, maxClockSkewMillis: configuration.maxClockSkewMillis)
        let inbound = Inbound(
            pipeline: pipeline, handler: handler, wanted: wanted, metrics: metrics, logger: logger, limiter: limiter)
        running.withLock { $0 = (events, inbound) }
        let thread = BusThread(
            configuration: configuration, signer: pipeline.signer, events: events, inbound: inbound, queue: queue,
            wanted: wanted, metrics: metrics, logger: logger, limiter: limiter, lifecycle: lifecycle, faults: faults)
        logger.info(
            "nats_bus_starting",
            metadata: [
                "servers": "\(configuration.servers)", "instance": "\(instanceID)",
                "signed": "\(pipeline.signer != nil)", "subject_prefix": "\(configuration.subjectPrefix)",
            ])
        try await withCheckedThrowingContinuation { (started: CheckedContinuation<Void, any Error>) in
            guard !faults.threadStartFails, startThread(name: "relay-nats", { thread.run(started: started) }) else {
                // Nobody will ever take from the queue: close it, so a later flush or shutdown
                // is answered at once instead of waiting forever.
                queue.close()
                lifecycle.finished()
                started.resume(throwing: NATSBusError("NATS bus: cannot start its thread"))
                return
            }
        }
    }

    /// Waits until everything queued before this call has been handed to the server and the
    /// server has answered a ping (so a subscription made before is in effect there). False when
    /// not connected or no answer came within `timeoutMillis`.
    public func flush(timeoutMillis: Int64 = 2_000) async -> Bool {
        guard lifecycle.hasStarted else { return false }
        return await withCheckedContinuation { continuation in
            if !queue.push(.flush(timeoutMillis: timeoutMillis, continuation)) { continuation.resume(returning: false) }
        }
    }

    /// Returns once the server has every subscription asked for so far (a flush, bounded by one
    /// second), or at once while disconnected: then libnats re-subscribes on reconnect anyway.
    public func confirmSubscriptions() async {
        _ = await flush(timeoutMillis: 1_000)
    }

    /// Stops delivering, publishes what was queued before (within about a second), unsubscribes,
    /// closes and frees the connection, and ends the bus thread. Safe to call more than once; every
    /// call returns after the bus has stopped.
    public func shutdown() async {
        // Taken out first: stopping waits for a connectivity report in progress, which may read
        // `isConnected`.
        if let running = running.withLock({ $0 }) {
            running.events.stop()
            running.inbound.stop()
        }
        await withCheckedContinuation { (stopped: CheckedContinuation<Void, Never>) in
            switch lifecycle.requestStop(stopped) {
            case .stopped:
                queue.close()
                stopped.resume()
            case .stopThread:
                queue.push(.shutdown)
                queue.close()
            case .wait:
                break
            }
        }
    }
}

// The ClusterBus over NATS: one publish thread per node, deliveries on libnats's threads.

import CNats
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
            guard startThread(name: "relay-nats", { thread.run(started: started) }) else {
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

/// Work for the bus thread, in the order it must happen.
enum BusJob: Sendable {
    case publish(BusEnvelope)
    /// Make the subscription of `sessionID` match ``WantedSessions``.
    case reconcile(sessionID: String)
    case flush(timeoutMillis: Int64, CheckedContinuation<Bool, Never>)
    /// libnats closed connection number `generation` by itself.
    case connectionClosed(generation: Int)
    case shutdown
}

/// Created → running → stopping → stopped, and who waits for stopped.
final class BusLifecycle: Sendable {
    private enum Phase { case created, running, stopping, stopped }

    enum StopAction {
        /// Nothing runs (never started, or already stopped): return now.
        case stopped
        /// The first stop request of a running bus: tell the thread.
        case stopThread
        /// Already stopping: the waiter is resumed when the thread ends.
        case wait
    }

    private let state = Mutex<(phase: Phase, waiters: [CheckedContinuation<Void, Never>])>((.created, []))

    /// True once started (also while and after stopping).
    var hasStarted: Bool { state.withLock { $0.phase != .created } }

    /// Created → running; false in any other phase.
    func beginStart() -> Bool {
        state.withLock { state in
            guard state.phase == .created else { return false }
            state.phase = .running
            return true
        }
    }

    /// Registers `waiter` unless nothing is running.
    func requestStop(_ waiter: CheckedContinuation<Void, Never>) -> StopAction {
        state.withLock { state in
            switch state.phase {
            case .created, .stopped:
                state.phase = .stopped
                return .stopped
            case .running:
                state.phase = .stopping
                state.waiters.append(waiter)
                return .stopThread
            case .stopping:
                state.waiters.append(waiter)
                return .wait
            }
        }
    }

    /// The thread has ended: resume everyone waiting.
    func finished() {
        let waiters = state.withLock { state in
            state.phase = .stopped
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// What the bus thread works with; everything here is safe to hand to that thread.
private struct BusThread: Sendable {
    let configuration: NATSClusterBusConfiguration
    let signer: EnvelopeSigner?
    let events: ConnectionEvents
    let inbound: Inbound
    let queue: WorkQueue<BusJob>
    let wanted: WantedSessions
    let metrics: NATSBusMetrics
    let logger: Logger
    let limiter: LogRateLimiter
    let lifecycle: BusLifecycle
    let faults: FaultInjection

    static let retryIntervalNanoseconds: Int64 = 1_000_000_000
    static let shutdownFlushMillis: Int64 = 1_000
    /// A connection that lived this long before libnats closed it resets the backoff.
    static let stableConnectionNanoseconds: Int64 = 60_000_000_000
    static let maximumRecreateDelayNanoseconds: Int64 = 30_000_000_000

    /// The thread's whole life: connect, serve the queue, close.
    func run(started: CheckedContinuation<Void, any Error>) {
        defer { nats_ReleaseThreadMemory() }
        let connection = NATSConnection(
            configuration: configuration, events: events, inbound: inbound, faults: faults, logger: logger,
            closedByLibrary: { [queue] generation in queue.push(.connectionClosed(generation: generation)) })
        do {
            try connection.connect()
        } catch {
            logger.error("nats_bus_start_failed", metadata: ["error": "\(error)"])
            queue.close()
            resumeWaiters(in: queue.takeAll(timeoutMillis: 0).jobs)
            lifecycle.finished()
            started.resume(throwing: error)
            return
        }
        // Subscribed before start returns, so the control subject is never missing once started.
        var retryControl = !connection.subscribeControl()
        started.resume()

        var retrySessions: Set<String> = []
        var nextRetry = monotonicNanoseconds() + Self.retryIntervalNanoseconds
        // Connecting anew after libnats gave up on a connection: when, and the backoff after that.
        let baseRecreateDelay = max(configuration.reconnectWaitMillis * 4, 200) * 1_000_000
        var recreateDelay = baseRecreateDelay
        var recreateAt: Int64?
        func scheduleRecreate() {
            // Jittered within the upper half of the delay, so nodes do not come back in step.
            recreateAt = monotonicNanoseconds() + Int64.random(in: recreateDelay / 2...recreateDelay)
            recreateDelay = min(recreateDelay * 2, Self.maximumRecreateDelayNanoseconds)
        }

        var stopping = false
        while !stopping {
            var wake: Int64?
            if retryControl || !retrySessions.isEmpty { wake = nextRetry }
            if let recreateAt { wake = min(wake ?? recreateAt, recreateAt) }
            let timeout = wake.map { max(0, ($0 - monotonicNanoseconds() + 999_999) / 1_000_000) }  // rounded up: no spinning
            let (jobs, closed) = queue.takeAll(timeoutMillis: timeout)

            // Timers first, so that a flush in this batch confirms what they subscribe.
            if let due = recreateAt, monotonicNanoseconds() >= due {
                recreateAt = nil
                do {
                    try connection.connect()
                    retryControl = !connection.subscribeControl()
                    retrySessions = connection.isOpen ? wanted.all.filter { !connection.subscribe(sessionID: $0) } : []
                    nextRetry = monotonicNanoseconds() + Self.retryIntervalNanoseconds
                } catch {
                    limiter.log(logger, .error, kind: "recreate_failed", "nats_connect_failed", metadata: ["error": "\(error)"])
                    scheduleRecreate()
                }
            }
            if recreateAt == nil, retryControl || !retrySessions.isEmpty, monotonicNanoseconds() >= nextRetry {
                if retryControl { retryControl = !connection.subscribeControl() }
                retrySessions = retrySessions.filter { !reconcile($0, on: connection) }
                nextRetry = monotonicNanoseconds() + Self.retryIntervalNanoseconds
            }

            // All flushes of a batch share one round trip after the whole batch: each still
            // confirms everything queued before it, and a burst of them does not hold up publishing.
            var flushes: [CheckedContinuation<Bool, Never>] = []
            var flushTimeoutMillis: Int64 = 0
            for job in jobs {
                switch job {
                case .publish(let envelope):
                    publish(envelope, on: connection)
                case .reconcile(let sessionID):
                    if reconcile(sessionID, on: connection) {
                        retrySessions.remove(sessionID)
                    } else {
                        if !retryControl && retrySessions.isEmpty { nextRetry = monotonicNanoseconds() + Self.retryIntervalNanoseconds }
                        retrySessions.insert(sessionID)
                    }
                case .flush(let timeoutMillis, let continuation):
                    flushes.append(continuation)
                    flushTimeoutMillis = max(flushTimeoutMillis, timeoutMillis)
                case .connectionClosed(let generation):
                    // Only a connection libnats closed by itself: ours are closed after the loop.
                    guard generation == connection.generation, connection.isOpen else { break }
                    if monotonicNanoseconds() - connection.connectedSince >= Self.stableConnectionNanoseconds {
                        recreateDelay = baseRecreateDelay
                    }
                    connection.discard()
                    retryControl = false
                    retrySessions = []
                    scheduleRecreate()
                    limiter.log(
                        logger, .error, kind: "closed_by_library",
                        "nats_connection_closed: the client library gave up (refused credentials?); connecting anew")
                case .shutdown:
                    stopping = true
                }
            }
            if !flushes.isEmpty {
                let flushed = connection.flush(timeoutMillis: flushTimeoutMillis)
                for continuation in flushes { continuation.resume(returning: flushed) }
            }
            stopping = stopping || closed
        }

        events.stop()
        inbound.stop()
        connection.close(flushTimeoutMillis: Self.shutdownFlushMillis)
        queue.close()
        resumeWaiters(in: queue.takeAll(timeoutMillis: 0).jobs)
        logger.info("nats_bus_stopped", metadata: ["statistics": "\(metrics.snapshot)"])
        lifecycle.finished()
    }

    /// Subscribes or unsubscribes as ``WantedSessions`` says now; false when a subscription failed.
    private func reconcile(_ sessionID: String, on connection: NATSConnection) -> Bool {
        guard wanted.contains(sessionID) else {
            connection.unsubscribe(sessionID: sessionID)
            return true
        }
        guard isSubjectToken(sessionID) else {
            limiter.log(logger, .error, kind: "invalid_session_subject", "nats_session_id_not_a_subject_token: not subscribed")
            return true
        }
        return connection.subscribe(sessionID: sessionID)
    }

    private func publish(_ envelope: BusEnvelope, on connection: NATSConnection) {
        let subject: String
        if envelope.target.isSessionTraffic {
            guard isSubjectToken(envelope.sessionID) else {
                metrics.publishFailed()
                limiter.log(logger, .error, kind: "invalid_session_subject", "nats_session_id_not_a_subject_token: not published")
                return
            }
            subject = connection.sessionSubjectPrefix + envelope.sessionID
        } else {
            subject = connection.controlSubject
        }
        let status = connection.publish(subject: subject, bytes: EnvelopeCodec.encode(envelope, signer: signer))
        if status == NATS_OK {
            metrics.published()
        } else {
            metrics.publishFailed()
            limiter.log(logger, .warning, kind: "publish_failed", "nats_publish_failed", metadata: ["status": "\(statusText(status))"])
        }
    }

    /// Answers continuations of jobs that will never run.
    private func resumeWaiters(in jobs: [BusJob]) {
        for case .flush(_, let continuation) in jobs { continuation.resume(returning: false) }
    }
}

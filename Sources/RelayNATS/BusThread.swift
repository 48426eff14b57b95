// The bus thread: connects, publishes and subscribes in FIFO order, retries, and closes.

import CNats
import Logging
import RelayCore

/// What the bus thread works with; everything here is safe to hand to that thread.
struct BusThread: Sendable {
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

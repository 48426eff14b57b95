// The libnats side: the connection and subscriptions (on the bus thread), and the objects that
// libnats's own threads call back into.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CNats
import Logging
import RelayCore
import RelayProtocol
import Synchronization

/// Why the bus could not start or do what it was asked.
public struct NATSBusError: Error, Sendable, CustomStringConvertible {
    /// What failed, with libnats's status text when it came from libnats.
    public let message: String

    /// An error with `message`.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}

// MARK: - Callback targets (libnats threads)

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

/// The target of one connection's callbacks, on libnats's callback thread.
///
/// libnats holds one retain of this object (taken when the callbacks are installed) and gives it
/// back in the closed callback, which libnats invokes last, also for a connection that never
/// connected.
final class ConnectionCallbacks: Sendable {
    let events: ConnectionEvents
    /// Which of the bus's successive connections this is.
    let generation: Int
    /// Tells the bus thread that libnats closed this connection.
    let closed: @Sendable (_ generation: Int) -> Void

    init(events: ConnectionEvents, generation: Int, closed: @escaping @Sendable (_ generation: Int) -> Void) {
        self.events = events
        self.generation = generation
        self.closed = closed
    }

    /// Installs the connection callbacks on `options`, retaining `self` for libnats.
    func install(on options: OpaquePointer) throws(NATSBusError) {
        let closure = Unmanaged.passRetained(self).toOpaque()
        do {
            try check(natsOptions_SetRetryOnFailedConnect(options, true, { _, closure in
                let events = ConnectionCallbacks.from(closure).events
                if events.report(true) { events.logger.info("nats_connected") }
            }, closure), "set retry on failed connect")
            try check(natsOptions_SetDisconnectedCB(options, { _, closure in
                let events = ConnectionCallbacks.from(closure).events
                if events.report(false) { events.limiter.log(events.logger, .warning, kind: "disconnected", "nats_disconnected") }
            }, closure), "set disconnected callback")
            try check(natsOptions_SetReconnectedCB(options, { _, closure in
                let events = ConnectionCallbacks.from(closure).events
                events.metrics.reconnected()
                if events.report(true) { events.limiter.log(events.logger, .info, kind: "reconnected", "nats_reconnected") }
            }, closure), "set reconnected callback")
            try check(natsOptions_SetErrorHandler(options, { _, _, status, closure in
                let events = ConnectionCallbacks.from(closure).events
                // Slow consumer: libnats dropped messages of a subscription whose queue was full.
                events.limiter.log(
                    events.logger, .warning, kind: "async_error.\(status.rawValue)", "nats_async_error",
                    metadata: ["status": "\(statusText(status))"])
            }, closure), "set error handler")
            try check(natsOptions_SetClosedCB(options, { _, closure in
                // The last callback libnats makes for this connection: give back its retain.
                let callbacks = Unmanaged<ConnectionCallbacks>.fromOpaque(closure!).takeRetainedValue()
                callbacks.events.report(false)
                callbacks.closed(callbacks.generation)
            }, closure), "set closed callback")
        } catch {
            Unmanaged<ConnectionCallbacks>.fromOpaque(closure).release()
            throw error
        }
    }

    private static func from(_ closure: UnsafeMutableRawPointer?) -> ConnectionCallbacks {
        Unmanaged<ConnectionCallbacks>.fromOpaque(closure!).takeUnretainedValue()
    }
}

/// The session subjects this node wants, shared by the caller side (`setSubscribed`), the bus
/// thread (which subscribes) and the delivery threads (which drop traffic for sessions no longer
/// wanted).
final class WantedSessions: Sendable {
    private let sessions = Mutex<Set<String>>([])

    /// Adds or removes `sessionID`; true when that changed the set.
    func set(_ wanted: Bool, sessionID: String) -> Bool {
        sessions.withLock { wanted ? $0.insert(sessionID).inserted : $0.remove(sessionID) != nil }
    }

    func contains(_ sessionID: String) -> Bool { sessions.withLock { $0.contains(sessionID) } }

    var all: Set<String> { sessions.withLock { $0 } }

    var count: Int { sessions.withLock { $0.count } }
}

/// Receives every subscription's messages on libnats's delivery threads and hands accepted
/// envelopes to the core.
///
/// libnats assigns each subscription to one delivery thread and calls it with that
/// subscription's messages one at a time, in arrival order. The core's handler is synchronous and
/// does not block, so it is called right there: that keeps per-subject order without a hop.
///
/// Each subscription holds one retain of this object as its callback closure, given back in the
/// subscription's completion callback, which libnats makes after the subscription is closed and
/// its last message callback has returned.
final class Inbound: Sendable {
    let pipeline: ReceivePipeline
    private let handler: @Sendable (BusEnvelope) -> Void
    private let wanted: WantedSessions
    private let metrics: NATSBusMetrics
    private let logger: Logger
    private let limiter: LogRateLimiter
    private let stopped = Atomic<Bool>(false)
    /// Subscriptions whose completion callback has not come yet.
    private let openSubscriptions = Atomic<Int>(0)

    init(
        pipeline: ReceivePipeline, handler: @escaping @Sendable (BusEnvelope) -> Void, wanted: WantedSessions,
        metrics: NATSBusMetrics, logger: Logger, limiter: LogRateLimiter
    ) {
        self.pipeline = pipeline
        self.handler = handler
        self.wanted = wanted
        self.metrics = metrics
        self.logger = logger
        self.limiter = limiter
    }

    /// One message's bytes, already copied out of libnats's message.
    func receive(_ bytes: [UInt8]) {
        guard !stopped.load(ordering: .acquiring) else { return }
        metrics.received()
        let now = wallClockMillis()
        switch pipeline.check(bytes, now: now) {
        case .accept(let envelope):
            let sessionTraffic = envelope.target.isSessionTraffic
            // Unsubscribing is asynchronous; what is still in flight for a session no longer
            // wanted is not this node's any more.
            if sessionTraffic && !wanted.contains(envelope.sessionID) { return }
            metrics.delivered(sessionTraffic: sessionTraffic, issuedAtMillis: envelope.issuedAtMillis, now: now)
            handler(envelope)
        case .own:
            return
        case .reject(let reason):
            metrics.rejected(reason)
            limiter.log(logger, .warning, kind: "rejected.\(reason.rawValue)", "nats_envelope_rejected", metadata: ["reason": "\(reason.rawValue)"])
        }
    }

    /// No more deliveries to the core.
    func stop() { stopped.store(true, ordering: .releasing) }

    var subscriptionsNotCompleted: Int { openSubscriptions.load(ordering: .acquiring) }

    /// The closure for one more subscription (one retain, see the type's comment).
    func retainForSubscription() -> UnsafeMutableRawPointer {
        openSubscriptions.add(1, ordering: .relaxed)
        return Unmanaged.passRetained(self).toOpaque()
    }

    /// Stops waiting for a subscription whose completion callback cannot be installed; its retain
    /// is kept for good.
    func abandonSubscription() { openSubscriptions.subtract(1, ordering: .releasing) }

    /// Gives back a subscription's retain (after its completion, or when it never came to be).
    static func releaseSubscription(_ closure: UnsafeMutableRawPointer) {
        let inbound = Unmanaged<Inbound>.fromOpaque(closure).takeRetainedValue()
        inbound.openSubscriptions.subtract(1, ordering: .releasing)
    }
}

/// Failures a test asks for, to exercise the paths real servers rarely take.
final class FaultInjection: Sendable {
    private let subscribeFailures = Atomic<Int>(0)

    /// The next `count` subscribe calls fail.
    func failSubscriptions(_ count: Int) { subscribeFailures.add(count, ordering: .relaxed) }

    /// True (and one fewer pending) when a subscribe should fail now.
    func takeSubscribeFailure() -> Bool {
        var pending = subscribeFailures.load(ordering: .relaxed)
        while pending > 0 {
            let (exchanged, original) = subscribeFailures.compareExchange(
                expected: pending, desired: pending - 1, ordering: .relaxed)
            if exchanged { return true }
            pending = original
        }
        return false
    }
}

// MARK: - The connection (bus thread only)

/// The libnats connection, its options and subscriptions. Created, used and destroyed on the bus
/// thread only, so it needs no lock; blocking libnats calls never reach Swift's cooperative pool.
///
/// libnats reconnects by itself, but closes a connection for good in a few cases (the server
/// refusing the credentials, for one); the bus thread then ``discard()``s it and connects anew.
final class NATSConnection {
    private let configuration: NATSClusterBusConfiguration
    private let events: ConnectionEvents
    private let inbound: Inbound
    private let faults: FaultInjection
    private let logger: Logger
    private let closedByLibrary: @Sendable (_ generation: Int) -> Void
    private var options: OpaquePointer?
    private var connection: OpaquePointer?
    private var sessionSubscriptions: [String: OpaquePointer] = [:]
    private var controlSubscription: OpaquePointer?

    let controlSubject: String
    let sessionSubjectPrefix: String
    /// Counts connections made; the closed callback names the one it is about.
    private(set) var generation = 0
    /// When the current connection was made (monotonic nanoseconds).
    private(set) var connectedSince: Int64 = 0

    init(
        configuration: NATSClusterBusConfiguration, events: ConnectionEvents, inbound: Inbound, faults: FaultInjection,
        logger: Logger, closedByLibrary: @escaping @Sendable (_ generation: Int) -> Void
    ) {
        self.configuration = configuration
        self.events = events
        self.inbound = inbound
        self.faults = faults
        self.logger = logger
        self.closedByLibrary = closedByLibrary
        controlSubject = "\(configuration.subjectPrefix).control"
        sessionSubjectPrefix = "\(configuration.subjectPrefix).session."
    }

    /// Sets up the options and connects. A server that is down is not an error: libnats keeps
    /// trying in the background and the connected callback reports it.
    func connect() throws(NATSBusError) {
        // Deliveries for all subscriptions share libnats's small thread pool instead of one thread
        // per subscription (a node can hold thousands of session subjects).
        _ = nats_SetMessageDeliveryPoolSize(2)
        var options: OpaquePointer?
        try check(natsOptions_Create(&options), "create options")
        guard let options else { throw NATSBusError("NATS: no options") }
        self.options = options
        generation += 1
        connectedSince = monotonicNanoseconds()
        do {
            try configure(options)
            try ConnectionCallbacks(events: events, generation: generation, closed: closedByLibrary).install(on: options)
        } catch {
            natsOptions_Destroy(options)
            self.options = nil
            throw error
        }
        var connection: OpaquePointer?
        let status = natsConnection_Connect(&connection, options)
        if status == NATS_OK, let connection {
            self.connection = connection
            logger.info("nats_connected", metadata: ["servers": "\(configuration.servers)"])
            events.reportConnected(connection)
        } else if status == NATS_NOT_YET_CONNECTED, let connection {
            self.connection = connection
            logger.warning("nats_not_yet_connected: retrying in the background", metadata: ["servers": "\(configuration.servers)"])
        } else {
            connection.map(natsConnection_Destroy)
            // libnats's retain of the callbacks is deliberately not given back: whether a failed
            // connect still posts the closed callback is not documented, and a small leak per
            // failed attempt (rare: libnats retries what is retryable) beats a use after free.
            natsOptions_Destroy(options)
            self.options = nil
            throw NATSBusError("NATS: cannot connect to \(configuration.servers): \(statusText(status))\(lastErrorDetail())")
        }
    }

    private func configure(_ options: OpaquePointer) throws(NATSBusError) {
        let urls = configuration.servers.serverURLs
        var cURLs: [UnsafePointer<CChar>?] = urls.map { UnsafePointer(strdup($0)) }
        defer { for url in cURLs { free(UnsafeMutablePointer(mutating: url)) } }
        try check(natsOptions_SetServers(options, &cURLs, Int32(cURLs.count)), "set servers")
        try check(natsOptions_SetName(options, configuration.connectionName), "set name")
        switch configuration.servers.credentials {
        case .none: break
        case .user(let user, let password): try check(natsOptions_SetUserInfo(options, user, password), "set user")
        case .token(let token): try check(natsOptions_SetToken(options, token), "set token")
        }
        if configuration.servers.tls {
            try check(natsOptions_SetSecure(options, true), "enable TLS")
            if let caFile = configuration.tlsCAFile {
                try check(natsOptions_LoadCATrustedCertificates(options, caFile), "load CA file \(caFile)")
            }
        }
        // Never give up: a node keeps trying until the server is back (DECISIONS 6).
        try check(natsOptions_SetAllowReconnect(options, true), "allow reconnect")
        try check(natsOptions_SetMaxReconnect(options, -1), "set unlimited reconnects")
        try check(natsOptions_SetReconnectWait(options, configuration.reconnectWaitMillis), "set reconnect wait")
        try check(
            natsOptions_SetReconnectJitter(options, configuration.reconnectJitterMillis, configuration.reconnectJitterMillis * 4),
            "set reconnect jitter")
        // A dead peer is noticed within about 20 s even when no traffic flows.
        try check(natsOptions_SetPingInterval(options, 10_000), "set ping interval")
        try check(natsOptions_SetMaxPingsOut(options, 2), "set max pings out")
        // The pipeline drops own envelopes anyway; not echoing them saves the round trip.
        try check(natsOptions_SetNoEcho(options, true), "disable echo")
        // Write each publish at once instead of waiting for libnats's flusher thread (about 1 ms
        // per hop otherwise). Publishing runs on the bus thread, so the write never blocks Swift.
        try check(natsOptions_SetSendAsap(options, true), "send as soon as possible")
        try check(natsOptions_UseGlobalMessageDelivery(options, true), "use global message delivery")
    }

    /// Hands one message to libnats (which buffers it, also while reconnecting).
    func publish(subject: String, bytes: [UInt8]) -> natsStatus {
        guard let connection else { return NATS_CONNECTION_CLOSED }
        return bytes.withUnsafeBytes { natsConnection_Publish(connection, subject, $0.baseAddress, Int32($0.count)) }
    }

    /// Whether a libnats connection exists (connected or trying to be).
    var isOpen: Bool { connection != nil }

    func isSubscribed(sessionID: String) -> Bool { sessionSubscriptions[sessionID] != nil }

    /// Subscribes to the control subject; false on failure (to be retried).
    func subscribeControl() -> Bool {
        guard controlSubscription == nil else { return true }
        controlSubscription = subscribe(controlSubject)
        return controlSubscription != nil
    }

    /// Subscribes to a session's subject; false on failure (to be retried).
    func subscribe(sessionID: String) -> Bool {
        guard sessionSubscriptions[sessionID] == nil else { return true }
        guard let subscription = subscribe(sessionSubjectPrefix + sessionID) else { return false }
        sessionSubscriptions[sessionID] = subscription
        return true
    }

    /// Unsubscribes from a session's subject (its completion callback frees the closure later).
    func unsubscribe(sessionID: String) {
        guard let subscription = sessionSubscriptions.removeValue(forKey: sessionID) else { return }
        close(subscription)
    }

    private func subscribe(_ subject: String) -> OpaquePointer? {
        guard let connection else { return nil }
        if faults.takeSubscribeFailure() {
            logSubscribeFailure(subject, status: "injected")
            return nil
        }
        let closure = inbound.retainForSubscription()
        var subscription: OpaquePointer?
        let status = natsConnection_Subscribe(&subscription, connection, subject, { _, _, message, closure in
            guard let message else { return }
            // Copy, then free libnats's message before the core sees the bytes.
            let length = Int(natsMsg_GetDataLength(message))
            var bytes: [UInt8] = []
            if length > 0, let data = natsMsg_GetData(message) {
                bytes = Array(UnsafeRawBufferPointer(start: data, count: length))
            }
            natsMsg_Destroy(message)
            Unmanaged<Inbound>.fromOpaque(closure!).takeUnretainedValue().receive(bytes)
        }, closure)
        guard status == NATS_OK, let subscription else {
            // No subscription, so libnats never calls with this closure.
            Inbound.releaseSubscription(closure)
            logSubscribeFailure(subject, status: statusText(status))
            return nil
        }
        let completion = natsSubscription_SetOnCompleteCB(subscription, { closure in
            Inbound.releaseSubscription(closure!)
        }, closure)
        if completion != NATS_OK {
            // Only possible if libnats closed the subscription already. Its message callback may
            // still be running, so the closure's retain is deliberately kept (a few bytes) rather
            // than risk a use after free.
            logger.warning("nats_subscription_closed_at_once", metadata: ["subject": "\(redactedSubject(subject))"])
            inbound.abandonSubscription()
            natsSubscription_Destroy(subscription)
            return nil
        }
        return subscription
    }

    private func logSubscribeFailure(_ subject: String, status: String) {
        events.limiter.log(
            logger, .warning, kind: "subscribe_failed", "nats_subscribe_failed: retrying in 1 s",
            metadata: ["subject": "\(redactedSubject(subject))", "status": "\(status)"])
    }

    private func close(_ subscription: OpaquePointer) {
        _ = natsSubscription_Unsubscribe(subscription)
        natsSubscription_Destroy(subscription)
    }

    /// Waits up to `timeoutMillis` for the server to acknowledge everything sent so far.
    func flush(timeoutMillis: Int64) -> Bool {
        guard let connection, natsConnection_Status(connection) == NATS_CONN_STATUS_CONNECTED else { return false }
        return natsConnection_FlushTimeout(connection, timeoutMillis) == NATS_OK
    }

    /// Frees a connection libnats has closed by itself, and its subscriptions (already closed
    /// with it; their completion callbacks give back their closures).
    func discard() {
        for subscription in sessionSubscriptions.values { natsSubscription_Destroy(subscription) }
        sessionSubscriptions.removeAll()
        if let controlSubscription { natsSubscription_Destroy(controlSubscription) }
        controlSubscription = nil
        if let connection { natsConnection_Destroy(connection) }
        connection = nil
        if let options { natsOptions_Destroy(options) }
        options = nil
    }

    /// Unsubscribes everything, sends what is buffered (bounded), closes and frees the connection
    /// and options, then waits (bounded) until libnats has finished with every subscription.
    func close(flushTimeoutMillis: Int64) {
        for subscription in sessionSubscriptions.values { close(subscription) }
        sessionSubscriptions.removeAll()
        if let controlSubscription { close(controlSubscription) }
        controlSubscription = nil
        if let connection {
            _ = flush(timeoutMillis: flushTimeoutMillis)
            natsConnection_Close(connection)
            natsConnection_Destroy(connection)
        }
        connection = nil
        if let options { natsOptions_Destroy(options) }
        options = nil
        // Completion callbacks run on libnats's delivery threads; after them no handler is running.
        let deadline = monotonicNanoseconds() + 2_000_000_000
        while inbound.subscriptionsNotCompleted > 0, monotonicNanoseconds() < deadline { nats_Sleep(5) }
        if inbound.subscriptionsNotCompleted > 0 {
            logger.warning("nats_subscriptions_not_completed", metadata: ["count": "\(inbound.subscriptionsNotCompleted)"])
        }
    }

    private func redactedSubject(_ subject: String) -> String {
        guard subject.hasPrefix(sessionSubjectPrefix) else { return subject }
        return sessionSubjectPrefix + Identifiers.redacted(String(subject.dropFirst(sessionSubjectPrefix.utf8.count)))
    }
}

/// libnats's text for `status`.
func statusText(_ status: natsStatus) -> String {
    guard let text = natsStatus_GetText(status) else { return "status \(status.rawValue)" }
    return String(cString: text)
}

/// libnats's last error on this thread, as `": detail"`, or empty.
private func lastErrorDetail() -> String {
    var status = NATS_OK
    guard let text = nats_GetLastError(&status) else { return "" }
    let detail = String(cString: text)
    return detail.isEmpty ? "" : ": \(detail)"
}

private func check(_ status: natsStatus, _ what: String) throws(NATSBusError) {
    guard status == NATS_OK else {
        throw NATSBusError("NATS: cannot \(what): \(statusText(status))\(lastErrorDetail())")
    }
}

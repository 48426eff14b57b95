// The libnats connection and its subscriptions, used on the bus thread only.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CNats
import Logging
import RelayProtocol

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

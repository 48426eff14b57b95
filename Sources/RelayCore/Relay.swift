import Logging
import RelayProtocol
import Synchronization

/// One relay node's logic: sessions, pairing, routing and limits. It knows no HTTP library, no
/// socket and no Redis or NATS: the transport hands it decoded requests and frames, and it
/// reaches sockets through ``RelayConnection``, other nodes through ``ClusterBus`` and durable
/// state through ``StateStore``.
public final class Relay: Sendable {
    public let configuration: CoreConfiguration
    public let stats = RelayStats()
    let registry = SessionRegistry()
    let ipLimiter = IPRateLimiter()
    let authFailureLimiter = IPRateLimiter()
    let tokenReloadFallback = Mutex<Int64?>(nil)
    let store: any StateStore
    let bus: (any ClusterBus)?
    let logger: Logger
    let validationLimits: MobileValidationLimits
    let reloadGate = ReloadGate()

    /// Creates a node. `bus` nil means this node runs alone (`crossInstanceBusEnabled` false).
    public init(configuration: CoreConfiguration, store: any StateStore, bus: (any ClusterBus)?, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.bus = bus
        self.logger = logger
        self.validationLimits = MobileValidationLimits(maxCommandTextBytes: configuration.maxRemoteCommandTextBytes)
    }

    /// Restores sessions from the store (retrying in the background if it cannot be read yet) and
    /// starts receiving from the bus.
    public func start() async throws {
        await restoreFromStore()
        if let bus {
            try await bus.start(
                handler: { [weak self] envelope in self?.handleBusEnvelope(envelope) },
                connectivity: { [weak self] up in self?.busConnectivityChanged(up: up) })
        }
    }

    /// Whether this node talks to other nodes.
    public var crossInstanceBusEnabled: Bool { bus != nil }
    /// Whether records outlive this process.
    public var persistenceEnabled: Bool { store.isShared }

    // MARK: Delivery

    /// Enqueues `frame` on `connection`; a full queue makes it a slow consumer (PROTOCOL §4.10).
    @discardableResult
    func deliver(_ frame: [UInt8], to connection: any RelayConnection, countFailure: Bool = true) -> Bool {
        switch connection.send(frame) {
        case .enqueued:
            return true
        case .full:
            if countFailure {
                stats.sendFailure(slowConsumer: true)
                logger.warning("slow_consumer_disconnect", metadata: ["connection": "\(connection.connectionID)"])
                logger.warning("outbound_send_failure reason=queue_full")
            }
            stats.disconnect(.slowConsumer)
            connection.terminate(.slowConsumer)
            return false
        case .closed:
            logger.debug("outbound_send_failure reason=queue_closed")
            return false
        }
    }

    /// Publishes a frame or control body for other nodes, if there are any.
    func publish(_ target: BusTarget, sessionID: String, payload: [UInt8], targetDeviceID: String? = nil) {
        guard let bus else { return }
        bus.publish(BusEnvelope(
            sessionID: sessionID, sourceInstanceID: bus.instanceID, target: target, targetDeviceID: targetDeviceID,
            payload: payload, issuedAtMillis: wallClockMillis(), nonce: Identifiers.shortID()))
    }

    /// Subscribes to the session's subject before a socket of it is announced, so nothing another
    /// node publishes right after `auth_ok` is lost; ``updateSubscription(_:)`` afterwards settles it.
    func subscribeAhead(_ session: Session) async {
        guard let bus else { return }
        bus.setSubscribed(true, sessionID: session.id)
        await bus.confirmSubscriptions()
    }

    /// Keeps the session subject subscribed exactly while this node holds a socket of the session.
    func updateSubscription(_ session: Session) {
        guard let bus else { return }
        let wanted = session.state.withLock { !$0.closed && $0.hasLocalSockets }
        bus.setSubscribed(wanted, sessionID: session.id)
    }

    // MARK: Persistence

    func deleteFromStore(sessionID: String, version: UInt64) async {
        do {
            try await store.delete(sessionID: sessionID, version: version)
        } catch {
            logger.error("state store delete failed", metadata: ["session": "\(Identifiers.redacted(sessionID))", "error": "\(error)"])
        }
    }

    // MARK: Closing

    /// Closes a local session (PROTOCOL §5): out of memory and the indexes, its pending join failed,
    /// its local sockets sent `disconnect` with `reason`. Returns the version to delete with, or nil
    /// if it was already closed.
    @discardableResult
    func closeSession(_ session: Session, reason: DisconnectReason) -> UInt64? {
        let closed: (sockets: [any RelayConnection], pending: PendingJoin?, version: UInt64)? = session.state.withLock { s in
            guard !s.closed else { return nil }
            s.closed = true
            let sockets = (s.desktop.map { [$0] } ?? []) + s.mobileConnections
            s.desktop = nil
            s.mobiles = [:]
            s.mobileConnections = []
            let pending = s.pendingJoin
            s.pendingJoin = nil
            s.version += 1
            let record = s.record
            registry.indexes.withLock { ix in
                if ix.sessions[session.id] === session { ix.sessions[session.id] = nil }
                SessionRegistry.unindex(record, from: &ix)
            }
            return (sockets, pending, s.version)
        }
        guard let closed else { return nil }
        closed.pending?.resolve(.desktopGone)
        for socket in closed.sockets {
            stats.disconnect(reason)
            socket.terminate(reason)
        }
        bus?.setSubscribed(false, sessionID: session.id)
        logger.info("session closed", metadata: ["session": "\(Identifiers.redacted(session.id))", "reason": "\(reason.rawValue)"])
        return closed.version
    }

    // MARK: Introspection

    /// The reference `/healthz` and `/metricsz` gauges, computed now.
    public func snapshot() -> RelaySnapshot {
        let sessions = registry.allSessions
        var withDesktop = 0, withMobile = 0, mobileSockets = 0, commandBuckets = 0, snapshotBuckets = 0
        for session in sessions {
            session.state.withLock { s in
                if s.desktop != nil { withDesktop += 1 }
                if !s.mobiles.isEmpty { withMobile += 1 }
                mobileSockets += s.mobiles.count
                commandBuckets += s.deviceCommandBuckets.count
                snapshotBuckets += s.snapshotBuckets.count
            }
        }
        let counts = registry.counts
        return RelaySnapshot(
            sessions: counts.sessions, sessionsWithDesktop: withDesktop, sessionsWithMobile: withMobile,
            activeWebSockets: withDesktop + mobileSockets,
            pendingJoinWaiters: stats.pendingJoinWaiters.load(ordering: .relaxed),
            deviceTokens: counts.deviceTokens, rateLimitBuckets: ipLimiter.count,
            commandRateLimitBuckets: commandBuckets, snapshotRateLimitBuckets: snapshotBuckets,
            busSubscriptions: bus?.subscriptionCount ?? 0,
            outboundSendFailures: stats.outboundSendFailures.load(ordering: .relaxed),
            slowConsumerDisconnects: stats.slowConsumerDisconnects.load(ordering: .relaxed),
            pairStartRequests: stats.pairStartRequests.load(ordering: .relaxed),
            pairStartSuccesses: stats.pairStartSuccesses.load(ordering: .relaxed),
            pairJoinRequests: stats.pairJoinRequests.load(ordering: .relaxed),
            pairJoinSuccesses: stats.pairJoinSuccesses.load(ordering: .relaxed),
            pairRefreshRequests: stats.pairRefreshRequests.load(ordering: .relaxed),
            pairRefreshSuccesses: stats.pairRefreshSuccesses.load(ordering: .relaxed),
            wsAuthAttempts: stats.wsAuthAttempts.load(ordering: .relaxed),
            wsAuthSuccesses: stats.wsAuthSuccesses.load(ordering: .relaxed),
            wsAuthFailureReasons: stats.authFailureReasons,
            crossInstanceBusEnabled: crossInstanceBusEnabled, redisPersistenceEnabled: persistenceEnabled)
    }

    /// Every socket this node holds, for the shutdown drain.
    public func localConnections() -> [any RelayConnection] {
        registry.allSessions.flatMap { session in
            session.state.withLock { s in (s.desktop.map { [$0] } ?? []) + s.mobileConnections }
        }
    }
}

/// The node's gauges and counters at one instant (PROTOCOL §7).
public struct RelaySnapshot: Sendable {
    public var sessions: Int
    public var sessionsWithDesktop: Int
    public var sessionsWithMobile: Int
    public var activeWebSockets: Int
    public var pendingJoinWaiters: Int
    public var deviceTokens: Int
    public var rateLimitBuckets: Int
    public var commandRateLimitBuckets: Int
    public var snapshotRateLimitBuckets: Int
    public var busSubscriptions: Int
    public var outboundSendFailures: Int
    public var slowConsumerDisconnects: Int
    public var pairStartRequests: Int
    public var pairStartSuccesses: Int
    public var pairJoinRequests: Int
    public var pairJoinSuccesses: Int
    public var pairRefreshRequests: Int
    public var pairRefreshSuccesses: Int
    public var wsAuthAttempts: Int
    public var wsAuthSuccesses: Int
    public var wsAuthFailureReasons: [(AuthFailureReason, Int)]
    public var crossInstanceBusEnabled: Bool
    public var redisPersistenceEnabled: Bool
}

// One relay node: the parts that do the work, and the API the transport calls.

import Logging
import RelayProtocol
import Synchronization
import Tracing

/// One relay node's logic. It knows no HTTP library, no socket and no Redis or NATS: the
/// transport hands it decoded requests and frames, and it reaches sockets through
/// ``RelayConnection``, other nodes through ``ClusterBus`` and durable state through
/// ``StateStore``.
///
/// The node is thin: each job is a part with its own folder.
/// - `Sessions`: the ``SessionDirectory`` (this node's copies, kept in step with the store).
/// - `Pairing`: the six POST endpoints and the pending approvals.
/// - `Sockets`: ``SocketAdmission`` (auth and the socket cap) and the per-socket endpoints, the
///   per-message path.
/// - `Routing`: the ``Router`` (local delivery and publication) and the ``BusInbox`` (what other
///   nodes send).
/// - `Sweeping`: the periodic ``Sweeper``.
public final class Relay: Sendable {
    /// The limits and timings this node enforces.
    public let configuration: CoreConfiguration
    /// The node's counters.
    public let stats: RelayStats
    let context: NodeContext
    let router: Router
    let directory: SessionDirectory
    let pairing: Pairing
    let admission: SocketAdmission
    let inbox: BusInbox
    let sweeper: Sweeper
    let presence: ClusterPresence
    let lease: PresenceLease
    private let started = Mutex(false)

    /// Creates a node. `bus` nil means this node runs alone (`crossInstanceBusEnabled` false).
    /// `clock` is what every expiry, budget, sweep and approval timeout is measured by. With a
    /// `tracer`, the pairing flow and socket auth are traced; without one nothing is.
    public init(
        configuration: CoreConfiguration, store: any StateStore, bus: (any ClusterBus)?, logger: Logger,
        clock: any RelayClock = SystemClock(), tracer: (any Tracer)? = nil
    ) {
        self.configuration = configuration
        let stats = RelayStats()
        self.stats = stats
        let nodeID = bus?.instanceID ?? Identifiers.shortID()
        let context = NodeContext(
            configuration: configuration, stats: stats, logger: logger, clock: clock, store: store, bus: bus,
            work: BackgroundWork(), address: PublicAddress(configuration), nodeID: nodeID,
            tracer: tracer.map { NodeTracer(tracer: $0, nodeID: nodeID) })
        self.context = context
        router = Router(context: context)
        presence = ClusterPresence(context: context)
        directory = SessionDirectory(context: context, router: router, presence: presence)
        lease = PresenceLease(context: context, directory: directory, router: router, presence: presence)
        pairing = Pairing(context: context, directory: directory, router: router, presence: presence)
        admission = SocketAdmission(context: context, directory: directory, router: router, pairing: pairing, presence: presence)
        inbox = BusInbox(context: context, directory: directory, router: router, pairing: pairing)
        sweeper = Sweeper(
            context: context, directory: directory, router: router,
            limiters: [pairing.ipLimiter, admission.authFailureLimiter])
    }

    /// Restores sessions from the store, takes this node's presence lease and starts receiving
    /// from the bus. A store that cannot be
    /// read yet is retried with backoff and jitter by ``runBackgroundWork(sweepIntervalMillis:)`` (DECISIONS 6)
    /// instead of leaving the node empty. Calling it again does nothing.
    public func start() async throws {
        guard started.withLock({ s in defer { s = true }; return !s }) else { return }
        do {
            try await directory.restore()
        } catch {
            context.logger.error("state_store_unavailable_at_start; retrying", metadata: ["error": "\(error)"])
            let directory = self.directory, clock = context.clock, logger = context.logger
            context.work.submit {
                var delay: Int64 = 100
                while !Task.isCancelled {
                    guard (try? await clock.sleep(millis: delay + Int64.random(in: 0...(delay / 2)))) != nil else { return }
                    do {
                        try await directory.restore()
                        logger.notice("state_store_reachable; sessions restored")
                        return
                    } catch {
                        delay = min(delay * 2, 5000)
                    }
                }
            }
        }
        if let bus = context.bus {
            let inbox = self.inbox
            // Weak: the node keeps its inbox; a strong capture would make the bus, its handler
            // and the node keep each other alive.
            try await bus.start(
                handler: { [weak inbox] envelope in inbox?.receive(envelope) },
                connectivity: { [weak inbox] up in inbox?.connectivityChanged(up: up) })
        }
        // Before the node serves: a claim made under a node without a lease counts for nothing.
        await lease.renew()
    }

    /// Hands `envelope` to the node as its bus would, on the caller's thread: the allocation
    /// benchmarks measure the cross-node path with it, without a bus's own delivery in the count.
    @_spi(Benchmarks)
    public func receiveFromBus(_ envelope: BusEnvelope) {
        inbox.receive(envelope)
    }

    /// The node's own work until the task is cancelled: a sweep every `sweepIntervalMillis` of the
    /// node's clock, the presence lease (in a cluster), and the jobs started by bus messages,
    /// closing sockets and the restore retry. Cancelling it cancels those jobs and returns once
    /// they ended.
    public func runBackgroundWork(sweepIntervalMillis: Int64) async {
        let sweeper = self.sweeper, clock = context.clock, lease = self.lease, directory = self.directory
        context.work.submit { await lease.run() }
        // Extension 10: a phone's sockets close within a quarter second of its grant's end. The
        // cadence is real time; the ends are judged by the node's clock.
        context.work.submit {
            while true {
                do { try await Task.sleep(for: .milliseconds(250)) } catch { return }
                directory.closeExpiredGrants(now: clock.nowMillis())
            }
        }
        await context.work.run(clock: clock, sweepIntervalMillis: sweepIntervalMillis) {
            await sweeper.sweep(now: clock.nowMillis())
        }
    }

    /// This node's id: its bus instance id, under which it claims presence.
    public var nodeID: String { context.nodeID }

    /// Tells the node its store is now another server (a promoted replica after a failover): the
    /// versions of what it read before are not comparable with the new server's, which may be
    /// behind them (the old master took writes it never replicated). Every local copy gives up
    /// its version, so the next read of it is taken whatever its version, and all are read again.
    public func storeWasReplaced() {
        context.logger.notice("state_store_replaced; reloading every session")
        directory.forgetStoredVersions()
        let directory = self.directory, logger = context.logger
        context.work.submit {
            do {
                try await directory.reloadAll()
            } catch {
                logger.warning("state_store_read_failed after a failover", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Whether this node talks to other nodes.
    public var crossInstanceBusEnabled: Bool { context.bus != nil }
    /// Whether records outlive this process.
    public var persistenceEnabled: Bool { context.store.isShared }

    /// The origins HTTP requests and phone sockets may come from now (the CORS answer uses it).
    public var origins: OriginPolicy { context.address.origins }

    /// Names the listener's address once it is known: the default `wsURL`, and the allowed origins
    /// when they were derived from it (nil keeps them). For a configuration that left the port to
    /// the system (`PORT=0`), whose defaults name port 0 until the listener is bound.
    public func useListeningAddress(defaultWebSocketURL: String, origins: OriginPolicy?) {
        context.address.update(defaultWebSocketURL: defaultWebSocketURL, origins: origins)
    }

    // MARK: Sockets

    /// Authenticates a socket with the token of its first frame, in the contract's check order:
    /// token, admission cap, then the role's own checks. On success `auth_ok` is the first frame
    /// queued on `connection`, before any other traffic can reach it.
    public func authenticate(token: String, peer: SocketPeer, connection: any RelayConnection) async -> AuthOutcome {
        await admission.authenticate(token: token, peer: peer, connection: connection)
    }

    /// Counts and logs an auth failure the transport decided (PROTOCOL §7).
    public func recordAuthFailure(_ reason: AuthFailureReason, peer: SocketPeer) {
        admission.recordAuthFailure(reason, peer: peer)
    }

    /// Every socket this node holds, for the shutdown drain.
    public func localConnections() -> [any RelayConnection] { directory.localConnections() }

    // MARK: HTTP API (PROTOCOL §2)

    /// `POST /pair/start`: creates, or replaces, a session.
    public func pairStart(_ request: PairStartRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        try await pairing.pairStart(request, meta: meta)
    }

    /// `POST /pair/join`: waits for the desktop's decision, then trusts the device.
    public func pairJoin(_ request: PairJoinRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        try await pairing.pairJoin(request, meta: meta)
    }

    /// `POST /pair/refresh`: a new join token, same session and devices.
    public func pairRefresh(_ request: PairRefreshRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        try await pairing.pairRefresh(request, meta: meta)
    }

    /// `POST /pair/stop`: the kill switch.
    public func pairStop(_ request: DesktopCredentialsRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        try await pairing.pairStop(request, meta: meta)
    }

    /// `POST /devices/list`: trusted devices, oldest first.
    public func devicesList(_ request: DesktopCredentialsRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        try await pairing.devicesList(request, meta: meta)
    }

    /// `POST /devices/scope` (extension 10): changes what a device may do, on every node.
    public func devicesScope(_ request: DeviceScopeRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        try await pairing.devicesScope(request, meta: meta)
    }

    /// `POST /devices/revoke`: forgets a device everywhere and closes its socket.
    public func devicesRevoke(_ request: DeviceRevokeRequest, meta: RequestMeta) async throws(APIError) -> [UInt8] {
        try await pairing.devicesRevoke(request, meta: meta)
    }

    // MARK: Sweeping

    /// One sweep at `now` (the node's clock by default); ``runBackgroundWork(sweepIntervalMillis:)``
    /// runs one every `sweepIntervalMillis`.
    public func sweep(now: Int64? = nil) async {
        await sweeper.sweep(now: now ?? context.now)
    }

    // MARK: Introspection

    /// The reference `/healthz` and `/metricsz` gauges, computed now.
    public func snapshot() -> RelaySnapshot {
        var withDesktop = 0, withMobile = 0, mobileSockets = 0, commandBuckets = 0, snapshotBuckets = 0
        for session in directory.allSessions {
            session.state.withLock { s in
                if s.desktop != nil { withDesktop += 1 }
                if !s.mobiles.isEmpty { withMobile += 1 }
                mobileSockets += s.mobiles.count
                commandBuckets += s.deviceCommandBuckets.count
                snapshotBuckets += s.snapshotBuckets.count
            }
        }
        return RelaySnapshot(
            sessions: directory.registry.sessionCount, sessionsWithDesktop: withDesktop, sessionsWithMobile: withMobile,
            activeWebSockets: withDesktop + mobileSockets,
            pendingJoinWaiters: stats.pendingJoinWaiters.load(ordering: .relaxed),
            deviceTokens: directory.registry.deviceTokenCount, rateLimitBuckets: pairing.ipLimiter.count,
            commandRateLimitBuckets: commandBuckets, snapshotRateLimitBuckets: snapshotBuckets,
            busSubscriptions: context.bus?.subscriptionCount ?? 0,
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
}

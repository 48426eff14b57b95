import RelayProtocol
import Synchronization

/// What a cross-node envelope is for (PROTOCOL §6.4).
public enum BusTarget: String, Sendable, CaseIterable {
    case desktop
    case mobile
    case pairDecision = "pair_decision"
    case sessionRefresh = "session_refresh"
    case desktopStatusProbe = "desktop_status_probe"
    case desktopStatusResponse = "desktop_status_response"

    /// Session traffic goes on the session subject; the rest on the control subject.
    public var isSessionTraffic: Bool { self == .desktop || self == .mobile }
}

/// One message between nodes, before signing and after verification.
public struct BusEnvelope: Sendable, Equatable {
    public var sessionID: String
    public var sourceInstanceID: String
    public var target: BusTarget
    public var targetDeviceID: String?
    /// A JSON text: the frame to deliver, or the control body.
    public var payload: [UInt8]
    public var issuedAtMillis: Int64
    public var nonce: String

    public init(
        sessionID: String, sourceInstanceID: String, target: BusTarget, targetDeviceID: String? = nil,
        payload: [UInt8], issuedAtMillis: Int64, nonce: String
    ) {
        self.sessionID = sessionID
        self.sourceInstanceID = sourceInstanceID
        self.target = target
        self.targetDeviceID = targetDeviceID
        self.payload = payload
        self.issuedAtMillis = issuedAtMillis
        self.nonce = nonce
    }
}

/// How nodes reach each other (PROTOCOL §6.3). Publishing never blocks the caller; envelopes from
/// one node to another arrive in publish order; a node never receives its own envelopes.
public protocol ClusterBus: Sendable {
    /// This node's id, new per process.
    var instanceID: String { get }
    /// Queues an envelope for every node subscribed to its subject.
    func publish(_ envelope: BusEnvelope)
    /// Subscribes to or unsubscribes from a session's subject.
    func setSubscribed(_ subscribed: Bool, sessionID: String)
    /// Session subjects currently subscribed.
    var subscriptionCount: Int { get }
    /// Returns once every subscription asked for so far is in effect, so that an envelope another
    /// node publishes from now on reaches this one (core NATS drops what arrives for a subject
    /// before its subscription has reached the server).
    func confirmSubscriptions() async
    /// Starts delivering envelopes for this node to `handler`, in order, on the bus's own context.
    /// `connectivity` hears when the node loses (false) and regains (true) the bus: envelopes
    /// published in between may be lost, so the core tells its clients to resync.
    func start(
        handler: @escaping @Sendable (BusEnvelope) -> Void, connectivity: @escaping @Sendable (Bool) -> Void
    ) async throws
    /// Stops delivering and releases the connection.
    func shutdown() async
}

/// Connects relay nodes that live in one process: the in-process cluster used to exercise
/// cross-node logic without a NATS server.
public final class InProcessBusHub: Sendable {
    private let nodes = Mutex<[String: InProcessClusterBus]>([:])

    public init() {}

    /// A bus endpoint for one more node on this hub.
    public func makeBus() -> InProcessClusterBus {
        let bus = InProcessClusterBus(hub: self)
        nodes.withLock { $0[bus.instanceID] = bus }
        return bus
    }

    fileprivate func route(_ envelope: BusEnvelope) {
        let receivers = nodes.withLock { Array($0.values) }
        for node in receivers where node.instanceID != envelope.sourceInstanceID {
            node.receive(envelope)
        }
    }

    fileprivate func remove(_ id: String) { _ = nodes.withLock { $0.removeValue(forKey: id) } }
}

/// One node's endpoint on an ``InProcessBusHub``. Deliveries run in order on one task per node.
public final class InProcessClusterBus: ClusterBus {
    public let instanceID = Identifiers.shortID()
    private let hub: InProcessBusHub
    private let state = Mutex<(subscribed: Set<String>, continuation: AsyncStream<BusEnvelope>.Continuation?)>(([], nil))

    fileprivate init(hub: InProcessBusHub) { self.hub = hub }

    public func publish(_ envelope: BusEnvelope) { hub.route(envelope) }

    public func setSubscribed(_ subscribed: Bool, sessionID: String) {
        state.withLock { s in
            if subscribed { s.subscribed.insert(sessionID) } else { s.subscribed.remove(sessionID) }
        }
    }

    public var subscriptionCount: Int { state.withLock { $0.subscribed.count } }

    /// In-process subscriptions take effect at once.
    public func confirmSubscriptions() async {}

    fileprivate func receive(_ envelope: BusEnvelope) {
        state.withLock { s in
            guard !envelope.target.isSessionTraffic || s.subscribed.contains(envelope.sessionID) else { return }
            s.continuation?.yield(envelope)
        }
    }

    public func start(
        handler: @escaping @Sendable (BusEnvelope) -> Void, connectivity: @escaping @Sendable (Bool) -> Void
    ) async throws {
        let (stream, continuation) = AsyncStream<BusEnvelope>.makeStream()
        state.withLock { $0.continuation = continuation }
        Task {
            for await envelope in stream { handler(envelope) }
        }
    }

    public func shutdown() async {
        hub.remove(instanceID)
        state.withLock {
            $0.continuation?.finish()
            $0.continuation = nil
        }
    }
}

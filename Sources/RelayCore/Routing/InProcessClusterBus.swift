// One node's endpoint on the in-process cluster.

import RelayProtocol
import Synchronization

/// One node's endpoint on an ``InProcessBusHub``. Deliveries run in order on one task per node.
public final class InProcessClusterBus: ClusterBus {
    /// This node's id, new per endpoint.
    public let instanceID = Identifiers.shortID()
    private let hub: InProcessBusHub
    private let state = Mutex<(subscribed: Set<String>, continuation: AsyncStream<BusEnvelope>.Continuation?)>(([], nil))

    /// An endpoint on `hub`; made only by ``InProcessBusHub/makeBus()``, which registers it.
    init(hub: InProcessBusHub) { self.hub = hub }

    /// Hands the envelope to every other node of the hub at once.
    public func publish(_ envelope: BusEnvelope) { hub.route(envelope) }

    /// Subscribes to or unsubscribes from a session's subject; takes effect at once.
    public func setSubscribed(_ subscribed: Bool, sessionID: String) {
        state.withLock { s in
            if subscribed { s.subscribed.insert(sessionID) } else { s.subscribed.remove(sessionID) }
        }
    }

    /// Session subjects currently subscribed.
    public var subscriptionCount: Int { state.withLock { $0.subscribed.count } }

    /// In-process subscriptions take effect at once.
    public func confirmSubscriptions() async {}

    /// Queues an envelope from another node: control envelopes always, session traffic only for a
    /// subscribed session (only the hub calls this).
    func receive(_ envelope: BusEnvelope) {
        state.withLock { s in
            guard !envelope.target.isSessionTraffic || s.subscribed.contains(envelope.sessionID) else { return }
            s.continuation?.yield(envelope)
        }
    }

    /// Delivers this node's envelopes to `handler`, in order, on one task; an in-process node never
    /// loses the bus, so `connectivity` is never called.
    public func start(
        handler: @escaping @Sendable (BusEnvelope) -> Void, connectivity: @escaping @Sendable (Bool) -> Void
    ) async throws {
        let (stream, continuation) = AsyncStream<BusEnvelope>.makeStream()
        state.withLock { $0.continuation = continuation }
        Task {
            for await envelope in stream { handler(envelope) }
        }
    }

    /// Leaves the hub and ends deliveries.
    public func shutdown() async {
        hub.remove(instanceID)
        state.withLock {
            $0.continuation?.finish()
            $0.continuation = nil
        }
    }
}

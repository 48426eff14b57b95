// The in-process cluster: relay nodes of one process connected without a NATS server.

import Synchronization

/// Connects relay nodes that live in one process: the in-process cluster used to exercise
/// cross-node logic without a NATS server.
public final class InProcessBusHub: Sendable {
    private let nodes = Mutex<[String: InProcessClusterBus]>([:])

    /// A hub with no nodes yet.
    public init() {}

    /// A bus endpoint for one more node on this hub.
    public func makeBus() -> InProcessClusterBus {
        let bus = InProcessClusterBus(hub: self)
        nodes.withLock { $0[bus.instanceID] = bus }
        return bus
    }

    /// Hands `envelope` to every node of the hub but its publisher (only the hub's buses call this).
    func route(_ envelope: BusEnvelope) {
        let receivers = nodes.withLock { Array($0.values) }
        for node in receivers where node.instanceID != envelope.sourceInstanceID {
            node.receive(envelope)
        }
    }

    /// Takes a shut-down node off the hub (only the hub's buses call this).
    func remove(_ id: String) { _ = nodes.withLock { $0.removeValue(forKey: id) } }
}

// How a node reaches the other nodes of its cluster.

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

// What a NATS bus has counted since it was created, as a value for tests and logs.

/// What a ``NATSClusterBus`` has counted since it was created.
public struct NATSClusterBusStatistics: Sendable, Equatable {
    /// Envelopes handed to libnats.
    public var published: Int
    /// Envelopes that could not be handed to libnats (closed connection, reconnect buffer full,
    /// too large, an invalid subject).
    public var publishFailures: Int
    /// Messages that arrived on a subscribed subject, before any check.
    public var received: Int
    /// Envelopes passed to the core's handler.
    public var delivered: Int
    /// Reconnections after a lost connection.
    public var reconnects: Int
    /// Dropped envelopes by reason (every reason present, zero or not).
    public var rejected: [NATSRejectionReason: Int]
}

extension NATSClusterBusStatistics: CustomStringConvertible {
    /// One line for logs: `published=3 publish_failures=0 … rejected=decode:1,schema:0,…`.
    public var description: String {
        let rejections = NATSRejectionReason.allCases.map { "\($0.rawValue):\(rejected[$0] ?? 0)" }.joined(separator: ",")
        return "published=\(published) publish_failures=\(publishFailures) received=\(received) delivered=\(delivered) "
            + "reconnects=\(reconnects) rejected=\(rejections)"
    }
}

// The node's gauges and counters at one instant, for /healthz and /metricsz.

import RelayProtocol

/// The node's gauges and counters at one instant (PROTOCOL §7). Each field is the `/metricsz`
/// field of the same name; counters are cumulative since this process started.
public struct RelaySnapshot: Sendable {
    /// Sessions in this node's memory, copies loaded from the store included.
    public var sessions: Int
    /// Sessions with a desktop socket on this node.
    public var sessionsWithDesktop: Int
    /// Sessions with at least one phone socket on this node.
    public var sessionsWithMobile: Int
    /// Authenticated sockets on this node: desktops plus phones.
    public var activeWebSockets: Int
    /// `/pair/join` waits in flight on this node.
    public var pendingJoinWaiters: Int
    /// Entries in the device-token index: current tokens and retired ones not yet pruned.
    public var deviceTokens: Int
    /// Per-client-IP buckets of the POST endpoints' budget currently held.
    public var rateLimitBuckets: Int
    /// Per-device command buckets, summed over sessions.
    public var commandRateLimitBuckets: Int
    /// Per-device snapshot-request buckets, summed over sessions.
    public var snapshotRateLimitBuckets: Int
    /// Session subjects this node is subscribed to on the bus.
    public var busSubscriptions: Int
    /// Failed enqueues on sockets that were counted.
    public var outboundSendFailures: Int
    /// Sockets closed as slow consumers.
    public var slowConsumerDisconnects: Int
    /// `/pair/start` requests that passed body decoding.
    public var pairStartRequests: Int
    /// `/pair/start` requests answered 200.
    public var pairStartSuccesses: Int
    /// `/pair/join` requests that passed body decoding.
    public var pairJoinRequests: Int
    /// `/pair/join` requests answered 200.
    public var pairJoinSuccesses: Int
    /// `/pair/refresh` requests that passed body decoding.
    public var pairRefreshRequests: Int
    /// `/pair/refresh` requests answered 200.
    public var pairRefreshSuccesses: Int
    /// WebSocket upgrades handled.
    public var wsAuthAttempts: Int
    /// Sockets sent `auth_ok`.
    public var wsAuthSuccesses: Int
    /// Auth failures by reason, only reasons that occurred.
    public var wsAuthFailureReasons: [(AuthFailureReason, Int)]
    /// Whether this node has a cluster bus.
    public var crossInstanceBusEnabled: Bool
    /// Whether the state store outlives this process (the shared store is configured; not a
    /// connectivity check).
    public var redisPersistenceEnabled: Bool
}

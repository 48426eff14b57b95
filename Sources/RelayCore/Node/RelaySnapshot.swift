// The node's gauges and counters at one instant, for /healthz and /metricsz.

import RelayProtocol

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

/// The limits and timings the core enforces; the server builds it from the environment.
public struct CoreConfiguration: Sendable {
    public var maxDevicesPerSession = 2
    public var sessionRetentionMillis: Int64 = 600_000
    public var trustedSessionTTLMillis: Int64 = 30 * 24 * 3_600_000
    public var pairApprovalTimeoutMillis: Int64 = 45_000
    public var tokenRotationGraceMillis: Int64 = 30_000
    public var maxPendingJoinWaiters = 64
    public var maxActiveWebSockets = 10_000
    public var maxRemoteCommandsPerMinute = 240
    public var maxRemoteSessionCommandsPerMinute = 480
    public var maxSnapshotRequestsPerMinute = 60
    public var maxPairRequestsPerMinute = 60
    public var maxRemoteCommandTextBytes = 16_384
    /// Failed WebSocket auths per client IP per minute; past it attempts are refused before any
    /// token lookup (`MAX_WS_AUTH_FAILURES_PER_MINUTE`).
    public var maxWSAuthFailuresPerMinute = 60
    /// The longest join-token lifetime honoured, whatever the desktop asks (`MAX_JOIN_TOKEN_TTL_MS`).
    public var maxJoinTokenTTLMillis: Int64 = 600_000
    /// A token the store's index does not know may come from a node that writes no index (a
    /// reference relay in a mixed cluster): the full reload that finds it runs at most once per
    /// this interval on a node.
    public var tokenReloadFallbackIntervalMillis: Int64 = 30_000
    /// The `wsURL` handed out when a desktop names none (derived from `PUBLIC_BASE_URL`).
    public var defaultWebSocketURL = "ws://localhost:8787/ws"
    /// The origin allowlist (`ALLOWED_ORIGINS`).
    public var origins = OriginPolicy(entries: ["http://localhost:4173"])

    public init() {}
}

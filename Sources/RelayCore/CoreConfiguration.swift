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
    /// The `wsURL` handed out when a desktop names none (derived from `PUBLIC_BASE_URL`).
    public var defaultWebSocketURL = "ws://localhost:8787/ws"
    /// The origin allowlist (`ALLOWED_ORIGINS`).
    public var origins = OriginPolicy(entries: ["http://localhost:4173"])

    public init() {}
}

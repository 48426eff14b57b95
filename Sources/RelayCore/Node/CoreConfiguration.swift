// The limits and timings the core enforces, as the environment configures them.

import RelayProtocol

/// The limits and timings the core enforces; the server builds it from the environment.
public struct CoreConfiguration: Sendable {
    /// Trusted devices, and concurrent phone sockets, per session (`MAX_DEVICES_PER_SESSION`).
    public var maxDevicesPerSession = 2
    /// Milliseconds after its creation that a session with no socket and no trusted device is
    /// swept (`SESSION_RETENTION_MS`).
    public var sessionRetentionMillis: Int64 = 600_000
    /// Milliseconds without activity after which a session with trusted devices and no socket
    /// here is swept (`TRUSTED_SESSION_TTL_MS`; 30 days by default).
    public var trustedSessionTTLMillis: Int64 = 30 * 24 * 3_600_000
    /// Longest `/pair/join` wait for the desktop's decision, in milliseconds
    /// (`PAIR_APPROVAL_TIMEOUT_MS`); cut to the join token's remaining life, but never under 5000.
    public var pairApprovalTimeoutMillis: Int64 = 45_000
    /// Milliseconds a rotated-out device token still authenticates (`TOKEN_ROTATION_GRACE_MS`);
    /// 0 ends it at once.
    public var tokenRotationGraceMillis: Int64 = 30_000
    /// Concurrent `/pair/join` waits on this node (`MAX_PENDING_JOIN_WAITERS`); past it a join is
    /// refused with 503 `pairing_backpressure`.
    public var maxPendingJoinWaiters = 64
    /// Authenticated sockets on this node, the admission cap (`MAX_ACTIVE_WEBSOCKET_CONNECTIONS`);
    /// a socket replacing its own predecessor always passes.
    public var maxActiveWebSockets = 10_000
    /// Commands per device per 60 s window (`MAX_REMOTE_COMMANDS_PER_MINUTE`).
    public var maxRemoteCommandsPerMinute = 240
    /// Commands per session, all its devices together, per 60 s window
    /// (`MAX_REMOTE_SESSION_COMMANDS_PER_MINUTE`).
    public var maxRemoteSessionCommandsPerMinute = 480
    /// Snapshot requests per device per 60 s window (`MAX_SNAPSHOT_REQUESTS_PER_MINUTE`).
    public var maxSnapshotRequestsPerMinute = 60
    /// Requests per client IP per 60 s window, shared by the six POST endpoints
    /// (`MAX_PAIR_REQUESTS_PER_MINUTE`).
    public var maxPairRequestsPerMinute = 60
    /// Longest command `text` field, in UTF-8 bytes (`MAX_REMOTE_COMMAND_TEXT_BYTES`).
    public var maxRemoteCommandTextBytes = 16_384
    /// Failed WebSocket auths per client IP per minute; past it attempts are refused before any
    /// token lookup (`MAX_WS_AUTH_FAILURES_PER_MINUTE`).
    public var maxWSAuthFailuresPerMinute = 60
    /// The longest join-token lifetime honoured, in milliseconds, whatever the desktop asks
    /// (`MAX_JOIN_TOKEN_TTL_MS`).
    public var maxJoinTokenTTLMillis: Int64 = 600_000
    /// A token the store's index does not know may come from a node that writes no index (a
    /// reference relay in a mixed cluster): the full reload that finds it runs at most once per
    /// this interval on a node, in milliseconds (no environment variable).
    public var tokenReloadFallbackIntervalMillis: Int64 = 30_000
    /// How long a node's presence claims outlive its last lease renewal, in milliseconds
    /// (`PRESENCE_TTL_MS`): a desktop whose node dies is offline on every other node this long
    /// after, plus one check interval (at most 500 ms). The node renews every quarter of it.
    public var presenceTTLMillis: Int64 = 5000
    /// The `wsURL` handed out when a desktop names none (derived from `PUBLIC_BASE_URL`).
    public var defaultWebSocketURL = "ws://localhost:8787/ws"
    /// The origin allowlist (`ALLOWED_ORIGINS`).
    public var origins = OriginPolicy(entries: ["http://localhost:4173"])
    /// `DEFAULT_DEVICE_SCOPE` (extension 10): the scope of a device whose approval names none.
    public var defaultDeviceScope = DeviceScope.control
    /// `HISTORY_MAX_FRAMES`, `HISTORY_MAX_BYTES`, `HISTORY_TTL_MS` (extension 11).
    public var history = HistoryLimits()
    /// `E2E_MODE` (extension 12): `noise` and `sealed` payloads beside plaintext commands
    /// (`optional`), instead of them (`required`), or not at all (`off`).
    public var endToEnd = EndToEndMode.optional

    /// Every field at its default; the server then applies the environment.
    public init() {}
}

// The relay's configuration: every environment variable, its default, and its validation.

import RelayCore
import RelayNATS
import RelayProtocol
import RelayRedis

/// Everything the relay reads from the environment, validated once at start (PROTOCOL §8 plus
/// our additions). ``RelayConfiguration/variables`` is the single table behind parsing and `--help`.
public struct RelayConfiguration: Sendable {
    /// `HOST`: the bind address, an IP literal or a host name of this machine.
    public var host = "0.0.0.0"
    /// `PORT`: the bind port; 0 lets the system choose one (``RelayApplication/boundPort`` and the
    /// `listening` log line give it).
    public var port = 8787
    /// `PUBLIC_BASE_URL`: the URL clients reach, source of the default `wsURL` and allowed origin.
    public var publicBaseURL = "http://localhost:8787"
    /// `TLS_CERT_FILE` and `TLS_KEY_FILE`: serve HTTPS and WSS with this certificate chain and key
    /// (PEM), reloaded on SIGHUP; `nil` serves plain HTTP (behind an ingress that ends TLS).
    public var tls: ServerTLSFiles?
    /// Whether `PUBLIC_BASE_URL` was set; if not, with `PORT=0` the default `wsURL` follows the
    /// port the listener was given.
    public var publicBaseURLConfigured = false
    /// Whether `ALLOWED_ORIGINS` was set; if not, the default allowed origin follows
    /// `PUBLIC_BASE_URL` (and, with `PORT=0`, the port the listener was given).
    public var allowedOriginsConfigured = false
    /// `MAX_JSON_BYTES`: the largest HTTP request body read.
    public var maxJSONBytes = 65_536
    /// `WS_AUTH_TIMEOUT_MS`: how long a new socket has to send its `relay.auth` frame.
    public var wsAuthTimeoutMillis: Int64 = 10_000
    /// `WS_HEARTBEAT_INTERVAL_MS` as given; sockets use ``effectiveHeartbeatIntervalMillis``.
    public var heartbeatIntervalMillis: Int64 = 20_000
    /// `WS_HEARTBEAT_TIMEOUT_MS` as given; sockets use ``effectiveHeartbeatTimeoutMillis``.
    public var heartbeatTimeoutMillis: Int64 = 60_000
    /// `MAX_WS_MESSAGE_BYTES`: the largest WebSocket message and frame accepted.
    public var maxWSMessageBytes = 65_536
    /// `MAX_SOCKET_OUTBOUND_QUEUE` as given; sockets use ``effectiveOutboundQueue``.
    public var maxSocketOutboundQueue = 256
    /// `MAX_WS_MESSAGES_PER_MINUTE`: text frames one authenticated socket may send per minute.
    public var maxWSMessagesPerMinute = 1_200
    /// `WS_WRITE_STALL_TIMEOUT_MS`: a socket whose writes make no progress this long is a slow consumer.
    public var writeStallTimeoutMillis: Int64 = 10_000
    /// `SESSION_SWEEP_INTERVAL_MS`: how often the sweep ends expired sessions and prunes stale budgets.
    public var sweepIntervalMillis: Int64 = 30_000
    /// `DRAIN_PERIOD_MS`: on SIGTERM, sockets are told `server_shutdown` in batches over this period.
    public var drainPeriodMillis: Int64 = 10_000
    /// `EVENT_LOOP_THREADS`: the threads that serve every HTTP connection and WebSocket. One by
    /// default: a session's phone and desktop then share a thread, so forwarding a message never
    /// wakes another one (the hand-off cost a third of the relay's CPU per message in
    /// LoadTests/RESULTS.md). A node scales out as replicas; raise this to use more cores in one
    /// process.
    public var eventLoopThreads = 1
    /// Proxy hops trusted for `X-Forwarded-For` (0: use the TCP peer).
    public var trustedProxyHops = 0
    /// `ALLOW_LEGACY_QUERY_TOKEN_AUTH`: accept `/ws?token=` instead of a `relay.auth` frame (old clients).
    public var allowLegacyQueryTokenAuth = false
    /// `REDIS_URL` as given (it may carry a password: never printed, see ``SecretValue``).
    public var redisURL: String? {
        get { storedRedisURL?.value }
        set { storedRedisURL = newValue.map(SecretValue.init) }
    }
    /// `REDIS_KEY_PREFIX`: the prefix of every Redis key, shared with the reference relay.
    public var redisKeyPrefix = "codexchat:remote-control:relay"
    /// `REDIS_TOKEN_STORAGE`: `digest` (records hold token digests) or `plain` (the reference's
    /// layout, for a cluster mixed with reference relays).
    public var redisTokenStorage: SessionRecordJSON.Layout = .digest
    /// `REDIS_SENTINELS` and `REDIS_SENTINEL_MASTER`: find the master through Sentinel.
    public var redisSentinel: RedisSentinelConfiguration?
    /// `REDIS_MIN_REPLICAS_ACK`: replicas that must confirm a durable change before a client hears
    /// it succeeded (Redis `WAIT`); 0 does not wait.
    public var redisMinReplicasAck = 0
    /// `REDIS_WAIT_TIMEOUT_MS`: how long `WAIT` may take before the change is refused with 503.
    public var redisWaitTimeoutMillis: Int64 = 500
    /// `NATS_URL` as given (it may carry credentials).
    public var natsURL: String? {
        get { storedNATSURL?.value }
        set { storedNATSURL = newValue.map(SecretValue.init) }
    }
    /// `NATS_SUBJECT_PREFIX`: the prefix of every NATS subject, shared with the reference relay.
    public var natsSubjectPrefix = "codexchat.remote.relay"
    /// `NATS_HMAC_SECRET`.
    public var natsHMACSecret: String? {
        get { storedNATSHMACSecret?.value }
        set { storedNATSHMACSecret = newValue.map(SecretValue.init) }
    }
    /// `NATS_HMAC_PREVIOUS_SECRET`.
    public var natsHMACPreviousSecret: String? {
        get { storedNATSHMACPreviousSecret?.value }
        set { storedNATSHMACPreviousSecret = newValue.map(SecretValue.init) }
    }
    // Secret-bearing values are stored wrapped, so printing or reflecting the configuration (the
    // lifecycle library logs its services at debug level) shows `<redacted>` instead.
    private var storedRedisURL: SecretValue?
    private var storedNATSURL: SecretValue?
    private var storedNATSHMACSecret: SecretValue?
    private var storedNATSHMACPreviousSecret: SecretValue?
    /// `NATS_ALLOW_UNSIGNED`: run a bus without `NATS_HMAC_SECRET` (reference test clusters only).
    public var natsAllowUnsigned = false
    /// `NATS_REPLAY_WINDOW_MS`: the oldest signed envelope accepted.
    public var natsReplayWindowMillis: Int64 = 120_000
    /// `NATS_MAX_CLOCK_SKEW_MS`: how far in the future a signed envelope may be dated.
    public var natsMaxClockSkewMillis: Int64 = 30_000
    /// `NATS_TLS_CA_FILE`: the CAs trusted for a `tls://` `NATS_URL`; nil uses the system's.
    public var natsTLSCAFile: String?
    /// `REDIS_URL`, parsed: set means cluster state in Redis.
    public var redis: RedisURL?
    /// The bus settings built from `NATS_*`: set means cross-node traffic over NATS.
    public var nats: NATSClusterBusConfiguration?
    /// `RELAY_ENV`: `development`, `staging` or `production`.
    public var environment = "development"
    /// `LOG_LEVEL` (or `RUST_LOG`), lower-cased.
    public var logLevel = "info"
    /// `LOG_FORMAT`: `text` or `json`.
    public var logFormat = "text"
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` and the variables beside it: set means traces of the pairing
    /// flow and socket auth go to that collector; nil traces nothing.
    public var tracing: TracingSettings?
    /// The limits the core enforces.
    public var core = CoreConfiguration()
    /// Time and size limits of HTTP connections before they become WebSockets.
    public var http = HTTPLimits()

    /// The defaults, as if no variable were set.
    public init() {
        core.defaultWebSocketURL = Self.defaultWebSocketURL(publicBaseURL: publicBaseURL, port: port)
        core.origins = OriginPolicy(entries: Self.defaultOrigins(publicBaseURL: publicBaseURL))
    }

    /// Effective heartbeat interval: at least 1 s.
    public var effectiveHeartbeatIntervalMillis: Int64 { max(heartbeatIntervalMillis, 1000) }
    /// Effective heartbeat timeout: at least twice the interval.
    public var effectiveHeartbeatTimeoutMillis: Int64 { max(heartbeatTimeoutMillis, 2 * effectiveHeartbeatIntervalMillis) }
    /// Effective outbound queue capacity: at least 8.
    public var effectiveOutboundQueue: Int { max(maxSocketOutboundQueue, 8) }

    /// One environment variable: its name, default as shown in `--help`, and meaning.
    public struct Variable: Sendable {
        /// The variable's name, e.g. `PORT`.
        public let name: String
        /// The default as `--help` shows it.
        public let defaultValue: String
        /// What the variable means, in one line of `--help`.
        public let help: String
    }

    /// Every variable the relay reads, in the order `--help` lists them.
    public static let variables: [Variable] = [
        .init(name: "HOST", defaultValue: "0.0.0.0", help: "Bind address: an IP literal ([::] for IPv6) or a host name of this machine"),
        .init(name: "PORT", defaultValue: "8787", help: "Bind port (0-65535; 0: one the system chooses, logged at start)"),
        .init(name: "TLS_CERT_FILE", defaultValue: "(unset)", help: "PEM certificate chain: with TLS_KEY_FILE the relay serves HTTPS and WSS itself; SIGHUP reloads both"),
        .init(name: "TLS_KEY_FILE", defaultValue: "(unset)", help: "PEM private key of TLS_CERT_FILE"),
        .init(name: "PUBLIC_BASE_URL", defaultValue: "http://localhost:<PORT> (https with TLS_CERT_FILE)", help: "http/https URL clients reach; source of the default wsURL and allowed origin"),
        .init(name: "ALLOWED_ORIGINS", defaultValue: "<PUBLIC_BASE_URL origin>,http://localhost:4173,http://127.0.0.1:4173", help: "Comma-separated browser origins allowed; * allows all"),
        .init(name: "MAX_JSON_BYTES", defaultValue: "65536", help: "HTTP request body limit"),
        .init(name: "MAX_PAIR_REQUESTS_PER_MINUTE", defaultValue: "60", help: "Per-IP budget shared by the six POST endpoints"),
        .init(name: "MAX_DEVICES_PER_SESSION", defaultValue: "2", help: "Trusted devices, and concurrent mobile sockets, per session"),
        .init(name: "SESSION_RETENTION_MS", defaultValue: "600000", help: "Lifetime of a session with no sockets and no trusted devices"),
        .init(name: "PAIR_APPROVAL_TIMEOUT_MS", defaultValue: "45000", help: "Longest /pair/join wait for the desktop's decision (at least 5000 effective)"),
        .init(name: "WS_AUTH_TIMEOUT_MS", defaultValue: "10000", help: "Time allowed for the relay.auth frame"),
        .init(name: "WS_HEARTBEAT_INTERVAL_MS", defaultValue: "20000", help: "Ping interval (at least 1000 effective)"),
        .init(name: "WS_HEARTBEAT_TIMEOUT_MS", defaultValue: "60000", help: "Silence before heartbeat_timeout (at least 2x interval effective)"),
        .init(name: "TOKEN_ROTATION_GRACE_MS", defaultValue: "30000", help: "How long a rotated mobile token still works; 0 for none"),
        .init(name: "MAX_PENDING_JOIN_WAITERS", defaultValue: "64", help: "Concurrent /pair/join waits on this node"),
        .init(name: "MAX_WS_MESSAGE_BYTES", defaultValue: "65536", help: "WebSocket message and frame limit"),
        .init(name: "MAX_SOCKET_OUTBOUND_QUEUE", defaultValue: "256", help: "Frames queued per socket before it is a slow consumer (at least 8 effective)"),
        .init(name: "MAX_ACTIVE_WEBSOCKET_CONNECTIONS", defaultValue: "10000", help: "Authenticated sockets on this node (admission cap)"),
        .init(name: "MAX_REMOTE_COMMANDS_PER_MINUTE", defaultValue: "240", help: "Commands per device per minute"),
        .init(name: "MAX_REMOTE_SESSION_COMMANDS_PER_MINUTE", defaultValue: "480", help: "Commands per session per minute"),
        .init(name: "MAX_SNAPSHOT_REQUESTS_PER_MINUTE", defaultValue: "60", help: "Snapshot requests per device per minute"),
        .init(name: "MAX_WS_MESSAGES_PER_MINUTE", defaultValue: "1200", help: "Text frames per authenticated socket per minute"),
        .init(name: "MAX_REMOTE_COMMAND_TEXT_BYTES", defaultValue: "16384", help: "Limit of command text fields"),
        .init(name: "REDIS_URL", defaultValue: "(unset)", help: "redis://[:password@]host:port[/db]; unset runs with in-memory state"),
        .init(name: "REDIS_KEY_PREFIX", defaultValue: "codexchat:remote-control:relay", help: "Redis key prefix"),
        .init(name: "REDIS_TOKEN_STORAGE", defaultValue: "digest", help: "digest: Redis holds SHA-256 digests of tokens; plain: the reference layout, for a cluster mixed with reference relays"),
        .init(name: "REDIS_SENTINELS", defaultValue: "(unset)", help: "host:port,... of Redis Sentinels: the master is asked of them and failovers are followed (REDIS_URL then gives only password and db)"),
        .init(name: "REDIS_SENTINEL_MASTER", defaultValue: "relay", help: "The master name the Sentinels monitor"),
        .init(name: "REDIS_MIN_REPLICAS_ACK", defaultValue: "0", help: "Replicas that must confirm (Redis WAIT) a pairing, rotation, revoke or stop before it is acknowledged"),
        .init(name: "REDIS_WAIT_TIMEOUT_MS", defaultValue: "500", help: "How long WAIT may take; a change not confirmed in time is answered 503 (at most 10000)"),
        .init(name: "PRESENCE_TTL_MS", defaultValue: "5000", help: "A node's presence claims lapse this long after its last renewal: its desktops are then offline on every node"),
        .init(name: "NATS_URL", defaultValue: "(unset)", help: "nats:// or tls:// URL, with credentials; unset runs without other nodes"),
        .init(name: "NATS_SUBJECT_PREFIX", defaultValue: "codexchat.remote.relay", help: "NATS subject prefix"),
        .init(name: "NATS_HMAC_SECRET", defaultValue: "(unset)", help: "Envelope signing secret, at least 32 bytes; required with NATS_URL in production"),
        .init(name: "NATS_HMAC_PREVIOUS_SECRET", defaultValue: "(unset)", help: "Verify-only previous secret, for rotation without downtime"),
        .init(name: "NATS_TLS_CA_FILE", defaultValue: "(unset)", help: "PEM file of the CAs trusted for a tls:// NATS_URL (default: the system's)"),
        .init(name: "NATS_REPLAY_WINDOW_MS", defaultValue: "120000", help: "Oldest envelope accepted"),
        .init(name: "NATS_MAX_CLOCK_SKEW_MS", defaultValue: "30000", help: "Largest future skew accepted"),
        .init(name: "TRUST_PROXY", defaultValue: "false", help: "Trust X-Forwarded-For: true (one proxy hop) or the number of trusted hops"),
        .init(name: "ALLOW_LEGACY_QUERY_TOKEN_AUTH", defaultValue: "false", help: "Accept ?token= on /ws instead of a relay.auth frame"),
        .init(name: "SESSION_SWEEP_INTERVAL_MS", defaultValue: "30000", help: "Sweeper period"),
        .init(name: "TRUSTED_SESSION_TTL_MS", defaultValue: "2592000000", help: "Lifetime of an inactive session with trusted devices (30 days)"),
        .init(name: "EVENT_LOOP_THREADS", defaultValue: "1", help: "Threads serving HTTP and WebSocket I/O (1 keeps a session's sockets on one thread; at most 256)"),
        .init(name: "DRAIN_PERIOD_MS", defaultValue: "10000", help: "On SIGTERM, sockets are sent server_shutdown in batches over this period"),
        .init(name: "WS_WRITE_STALL_TIMEOUT_MS", defaultValue: "10000", help: "A socket whose writes make no progress this long is a slow consumer"),
        .init(name: "NATS_ALLOW_UNSIGNED", defaultValue: "false", help: "Run NATS_URL without NATS_HMAC_SECRET (unsigned envelopes); otherwise such a start is refused"),
        .init(name: "HTTP_IDLE_TIMEOUT_MS", defaultValue: "65000", help: "An HTTP connection with no request in flight is closed after this long (above common proxies' 60 s)"),
        .init(name: "HTTP_HEADER_TIMEOUT_MS", defaultValue: "20000", help: "Time allowed for a whole request head once its first byte arrived (408, then close)"),
        .init(name: "HTTP_BODY_TIMEOUT_MS", defaultValue: "30000", help: "Time allowed for a whole request body once the head is in (408, then close); not the response wait"),
        .init(name: "MAX_HTTP_HEADER_BYTES", defaultValue: "16384", help: "Request line plus headers; over it 431 (414 for the request line alone), then close"),
        .init(name: "MAX_HTTP_CONNECTIONS", defaultValue: "4096", help: "Open connections not yet admitted (HTTP, or WebSocket before auth), per node; over it new ones are closed at once"),
        .init(name: "MAX_WS_AUTH_FAILURES_PER_MINUTE", defaultValue: "60", help: "Failed WebSocket auths per client IP per minute; further attempts are refused before any lookup"),
        .init(name: "MAX_JOIN_TOKEN_TTL_MS", defaultValue: "600000", help: "Longest join-token lifetime honoured, whatever joinTokenExpiresAt asks"),
        .init(name: "HISTORY_MAX_FRAMES", defaultValue: "512", help: "Desktop envelopes kept per session for relay.resume (extension 11); 0 turns it off"),
        .init(name: "HISTORY_MAX_BYTES", defaultValue: "2097152", help: "Bytes of desktop envelopes kept per session for relay.resume"),
        .init(name: "HISTORY_TTL_MS", defaultValue: "600000", help: "Oldest desktop envelope kept for relay.resume"),
        .init(name: "DEFAULT_DEVICE_SCOPE", defaultValue: "control", help: "control or view: the scope of a phone whose approval names none (extension 10)"),
        .init(name: "E2E_MODE", defaultValue: "optional", help: "optional, required or off: end-to-end encrypted noise and sealed payloads beside plaintext commands, instead of them, or not at all (extension 12)"),
        .init(name: "RELAY_ENV", defaultValue: "development", help: "development, staging or production"),
        .init(name: "LOG_LEVEL", defaultValue: "info", help: "trace, debug, info, notice, warning, error or critical (RUST_LOG is read too)"),
        .init(name: "LOG_FORMAT", defaultValue: "text", help: "text or json"),
        .init(name: "OTEL_EXPORTER_OTLP_ENDPOINT", defaultValue: "(unset)", help: "OTLP/HTTP collector base URL (v1/traces appended): traces of pairing and socket auth; unset traces nothing"),
        .init(name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", defaultValue: "(unset)", help: "Full OTLP/HTTP traces URL, used as given instead of the base URL"),
        .init(name: "OTEL_EXPORTER_OTLP_PROTOCOL", defaultValue: "http/protobuf", help: "http/protobuf or http/json (no gRPC exporter is built in)"),
        .init(name: "OTEL_SERVICE_NAME", defaultValue: "relay", help: "service.name of the exported spans"),
        .init(name: "OTEL_SDK_DISABLED", defaultValue: "false", help: "true: no traces whatever else is set (also OTEL_TRACES_EXPORTER=none)"),
    ]

    /// With `PORT=0` and no `PUBLIC_BASE_URL`, what the defaults become once the listener has
    /// `bound`: the default `wsURL` and, unless `ALLOWED_ORIGINS` was set, the allowed origins.
    /// Nil when the configuration named its address itself.
    public func listeningAddress(port bound: Int) -> (defaultWebSocketURL: String, origins: OriginPolicy?)? {
        guard port == 0, !publicBaseURLConfigured else { return nil }
        let base = "\(tls == nil ? "http" : "https")://localhost:\(bound)"
        return (
            Self.defaultWebSocketURL(publicBaseURL: base, port: bound),
            allowedOriginsConfigured ? nil : OriginPolicy(entries: Self.defaultOrigins(publicBaseURL: base)))
    }

    /// Reads and validates the configuration; the first bad value throws with its variable's name.
    public static func fromEnvironment(_ env: [String: String]) throws(ConfigurationError) -> RelayConfiguration {
        var c = RelayConfiguration()
        let reader = EnvironmentReader(env: env)

        if let host = env["HOST"] {
            guard !host.trimmingASCIIWhitespace().isEmpty else { throw ConfigurationError("HOST must not be empty.") }
            c.host = host.trimmingASCIIWhitespace()
        }
        if let port = try reader.integer("PORT", max: 65_535) {
            c.port = port
        }
        switch (reader.string("TLS_CERT_FILE"), reader.string("TLS_KEY_FILE")) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            c.tls = ServerTLSFiles(certificateFile: certificate, keyFile: key)
        case (nil, _?):
            throw ConfigurationError("TLS_KEY_FILE is set without TLS_CERT_FILE; set both to serve TLS, or neither.")
        case (_?, nil):
            throw ConfigurationError("TLS_CERT_FILE is set without TLS_KEY_FILE; set both to serve TLS, or neither.")
        }
        c.publicBaseURL = "\(c.tls == nil ? "http" : "https")://localhost:\(c.port)"
        if let base = reader.string("PUBLIC_BASE_URL") {
            guard let url = ParsedURL(base) else { throw ConfigurationError("PUBLIC_BASE_URL is invalid: \(base) is not a URL.") }
            guard url.scheme == "http" || url.scheme == "https" else {
                throw ConfigurationError("PUBLIC_BASE_URL must use http or https.")
            }
            c.publicBaseURL = base.trimmingASCIIWhitespace()
            c.publicBaseURLConfigured = true
        }

        // Positive limits, in the reference's table order so the first zero is the one reported.
        func positive(_ name: String, _ apply: (Int) -> Void) throws(ConfigurationError) {
            if let v = try reader.integer(name) {
                guard v > 0 else { throw ConfigurationError("\(name) must be greater than 0.") }
                apply(v)
            }
        }
        try positive("MAX_JSON_BYTES") { c.maxJSONBytes = $0 }
        try positive("MAX_PAIR_REQUESTS_PER_MINUTE") { c.core.maxPairRequestsPerMinute = $0 }
        try positive("MAX_DEVICES_PER_SESSION") { c.core.maxDevicesPerSession = $0 }
        try positive("SESSION_RETENTION_MS") { c.core.sessionRetentionMillis = Int64($0) }
        try positive("PAIR_APPROVAL_TIMEOUT_MS") { c.core.pairApprovalTimeoutMillis = Int64($0) }
        try positive("WS_AUTH_TIMEOUT_MS") { c.wsAuthTimeoutMillis = Int64($0) }
        try positive("WS_HEARTBEAT_INTERVAL_MS") { c.heartbeatIntervalMillis = Int64($0) }
        try positive("WS_HEARTBEAT_TIMEOUT_MS") { c.heartbeatTimeoutMillis = Int64($0) }
        if let grace = try reader.integer("TOKEN_ROTATION_GRACE_MS") { c.core.tokenRotationGraceMillis = Int64(grace) }
        try positive("MAX_PENDING_JOIN_WAITERS") { c.core.maxPendingJoinWaiters = $0 }
        try positive("MAX_WS_MESSAGE_BYTES") { c.maxWSMessageBytes = $0 }
        try positive("MAX_SOCKET_OUTBOUND_QUEUE") { c.maxSocketOutboundQueue = $0 }
        try positive("MAX_ACTIVE_WEBSOCKET_CONNECTIONS") { c.core.maxActiveWebSockets = $0 }
        try positive("MAX_REMOTE_COMMANDS_PER_MINUTE") { c.core.maxRemoteCommandsPerMinute = $0 }
        try positive("MAX_REMOTE_SESSION_COMMANDS_PER_MINUTE") { c.core.maxRemoteSessionCommandsPerMinute = $0 }
        try positive("MAX_SNAPSHOT_REQUESTS_PER_MINUTE") { c.core.maxSnapshotRequestsPerMinute = $0 }
        try positive("MAX_WS_MESSAGES_PER_MINUTE") { c.maxWSMessagesPerMinute = $0 }
        try positive("MAX_REMOTE_COMMAND_TEXT_BYTES") { c.core.maxRemoteCommandTextBytes = $0 }
        guard c.heartbeatTimeoutMillis >= c.heartbeatIntervalMillis else {
            throw ConfigurationError("WS_HEARTBEAT_TIMEOUT_MS must be greater than or equal to WS_HEARTBEAT_INTERVAL_MS.")
        }
        try positive("SESSION_SWEEP_INTERVAL_MS") { c.sweepIntervalMillis = Int64($0) }
        try positive("TRUSTED_SESSION_TTL_MS") { c.core.trustedSessionTTLMillis = Int64($0) }
        try positive("WS_WRITE_STALL_TIMEOUT_MS") { c.writeStallTimeoutMillis = Int64($0) }
        if let threads = try reader.integer("EVENT_LOOP_THREADS", max: 256) {
            guard threads >= 1 else { throw ConfigurationError("EVENT_LOOP_THREADS must be a whole number from 1 to 256 (got \"0\").") }
            c.eventLoopThreads = threads
        }
        if let drain = try reader.integer("DRAIN_PERIOD_MS") { c.drainPeriodMillis = Int64(drain) }
        try positive("HTTP_IDLE_TIMEOUT_MS") { c.http.idleTimeoutMillis = Int64($0) }
        try positive("HTTP_HEADER_TIMEOUT_MS") { c.http.headerTimeoutMillis = Int64($0) }
        try positive("HTTP_BODY_TIMEOUT_MS") { c.http.bodyTimeoutMillis = Int64($0) }
        if let bytes = try reader.integer("MAX_HTTP_HEADER_BYTES") {
            guard bytes >= HTTPLimits.minimumHeaderBytes else {
                throw ConfigurationError("MAX_HTTP_HEADER_BYTES must be at least \(HTTPLimits.minimumHeaderBytes).")
            }
            c.http.maxHeaderBytes = bytes
        }
        try positive("MAX_HTTP_CONNECTIONS") { c.http.maxConnections = $0 }
        try positive("MAX_WS_AUTH_FAILURES_PER_MINUTE") { c.core.maxWSAuthFailuresPerMinute = $0 }
        try positive("MAX_JOIN_TOKEN_TTL_MS") { c.core.maxJoinTokenTTLMillis = Int64($0) }
        if let frames = try reader.integer("HISTORY_MAX_FRAMES", max: 1_000_000) { c.core.history.maxFrames = frames }
        try positive("HISTORY_MAX_BYTES") { c.core.history.maxBytes = $0 }
        try positive("HISTORY_TTL_MS") { c.core.history.ttlMillis = Int64($0) }
        if let scope = reader.string("DEFAULT_DEVICE_SCOPE") {
            guard let parsed = DeviceScope(rawValue: scope.lowercased()) else {
                throw ConfigurationError("DEFAULT_DEVICE_SCOPE must be control or view (got \(scope)).")
            }
            c.core.defaultDeviceScope = parsed
        }
        if let mode = reader.string("E2E_MODE") {
            guard let parsed = EndToEndMode(rawValue: mode.lowercased()) else {
                throw ConfigurationError("E2E_MODE must be optional, required or off (got \(mode)).")
            }
            c.core.endToEnd = parsed
        }

        let configuredOrigins = reader.rawString("ALLOWED_ORIGINS")
        c.allowedOriginsConfigured = configuredOrigins != nil
        let originEntries = configuredOrigins.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            ?? defaultOrigins(publicBaseURL: c.publicBaseURL)
        c.core.origins = OriginPolicy(entries: originEntries)
        guard !c.core.origins.isEmpty else { throw ConfigurationError("ALLOWED_ORIGINS must contain at least one origin.") }
        c.core.defaultWebSocketURL = defaultWebSocketURL(publicBaseURL: c.publicBaseURL, port: c.port)

        if let trust = reader.string("TRUST_PROXY") {
            if let hops = Int(trust), hops >= 0 {
                c.trustedProxyHops = hops
            } else if let flag = EnvironmentReader.boolean(trust) {
                c.trustedProxyHops = flag ? 1 : 0
            } else {
                throw ConfigurationError("TRUST_PROXY must be true, false or a number of trusted proxy hops (got \(trust)).")
            }
        }
        c.allowLegacyQueryTokenAuth = reader.string("ALLOW_LEGACY_QUERY_TOKEN_AUTH").flatMap(EnvironmentReader.boolean) ?? false

        c.environment = reader.string("RELAY_ENV")?.lowercased() ?? "development"
        guard ["development", "staging", "production"].contains(c.environment) else {
            throw ConfigurationError("RELAY_ENV must be development, staging or production (got \(c.environment)).")
        }
        c.redisURL = reader.string("REDIS_URL")
        if let prefix = reader.string("REDIS_KEY_PREFIX") { c.redisKeyPrefix = prefix }
        c.natsURL = reader.string("NATS_URL")
        if let prefix = reader.string("NATS_SUBJECT_PREFIX") { c.natsSubjectPrefix = prefix }
        c.natsHMACSecret = reader.string("NATS_HMAC_SECRET")
        c.natsHMACPreviousSecret = reader.string("NATS_HMAC_PREVIOUS_SECRET")
        c.natsAllowUnsigned = reader.string("NATS_ALLOW_UNSIGNED").flatMap(EnvironmentReader.boolean) ?? false
        if c.natsURL != nil {
            // PROTOCOL §8: a bus without a signing secret is refused in every environment, unless
            // the operator asked for it by name.
            if c.natsHMACSecret == nil, !c.natsAllowUnsigned {
                throw ConfigurationError("NATS_HMAC_SECRET must be set when NATS_URL is configured.")
            }
            if let secret = c.natsHMACSecret, secret.utf8.count < 32 {
                throw ConfigurationError("NATS_HMAC_SECRET must be at least 32 characters.")
            }
            if let previous = c.natsHMACPreviousSecret, previous.utf8.count < 32 {
                throw ConfigurationError("NATS_HMAC_PREVIOUS_SECRET must be at least 32 characters.")
            }
            if let window = try reader.integer("NATS_REPLAY_WINDOW_MS") {
                guard window > 0 else { throw ConfigurationError("NATS_REPLAY_WINDOW_MS must be greater than 0.") }
                c.natsReplayWindowMillis = Int64(window)
            }
            if let skew = try reader.integer("NATS_MAX_CLOCK_SKEW_MS") {
                guard skew > 0 else { throw ConfigurationError("NATS_MAX_CLOCK_SKEW_MS must be greater than 0.") }
                c.natsMaxClockSkewMillis = Int64(skew)
            }
            c.natsTLSCAFile = reader.string("NATS_TLS_CA_FILE")
        }
        if let url = c.redisURL {
            do {
                c.redis = try RedisURL(parsing: url)
            } catch {
                throw ConfigurationError("REDIS_URL: \(error.description)")
            }
        }
        if let storage = reader.string("REDIS_TOKEN_STORAGE")?.lowercased() {
            switch storage {
            case "digest": c.redisTokenStorage = .digest
            case "plain": c.redisTokenStorage = .plain
            default: throw ConfigurationError("REDIS_TOKEN_STORAGE must be digest or plain (got \(storage)).")
            }
        }
        if let sentinels = reader.string("REDIS_SENTINELS") {
            do {
                c.redisSentinel = try RedisSentinelConfiguration(
                    parsing: sentinels, masterName: reader.string("REDIS_SENTINEL_MASTER") ?? RedisSentinelConfiguration.defaultMasterName)
            } catch {
                throw ConfigurationError("REDIS_SENTINELS: \(error.description)")
            }
            // The master's address comes from Sentinel; REDIS_URL (if set) gives credentials and db.
            if c.redis == nil { c.redis = RedisURL(endpoint: .tcp(host: "sentinel-resolved", port: RedisURL.defaultPort)) }
        }
        if let acks = try reader.integer("REDIS_MIN_REPLICAS_ACK") {
            guard acks >= 0 else { throw ConfigurationError("REDIS_MIN_REPLICAS_ACK must be 0 or more.") }
            c.redisMinReplicasAck = acks
        }
        if let wait = try reader.integer("REDIS_WAIT_TIMEOUT_MS") {
            guard (1...10_000).contains(wait) else { throw ConfigurationError("REDIS_WAIT_TIMEOUT_MS must be 1-10000.") }
            c.redisWaitTimeoutMillis = Int64(wait)
        }
        try positive("PRESENCE_TTL_MS") { c.core.presenceTTLMillis = Int64(max($0, 100)) }
        if let url = c.natsURL {
            do {
                let nats = try NATSClusterBusConfiguration(
                    url: url, subjectPrefix: c.natsSubjectPrefix, secret: c.natsHMACSecret,
                    previousSecret: c.natsHMACPreviousSecret, replayWindowMillis: c.natsReplayWindowMillis,
                    maxClockSkewMillis: c.natsMaxClockSkewMillis, tlsCAFile: c.natsTLSCAFile)
                try nats.validate()
                c.nats = nats
            } catch {
                throw ConfigurationError(error.description)
            }
        }
        c.logLevel = (reader.string("LOG_LEVEL") ?? reader.string("RUST_LOG") ?? "info").lowercased()
        guard ["trace", "debug", "info", "notice", "warning", "warn", "error", "critical"].contains(c.logLevel) else {
            throw ConfigurationError("LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical (got \(c.logLevel)).")
        }
        c.logFormat = reader.string("LOG_FORMAT")?.lowercased() ?? "text"
        guard c.logFormat == "text" || c.logFormat == "json" else {
            throw ConfigurationError("LOG_FORMAT must be text or json (got \(c.logFormat)).")
        }
        c.tracing = try TracingSettings.read(reader)
        return c
    }

    static func defaultOrigins(publicBaseURL: String) -> [String] {
        [OriginPolicy.normalize(publicBaseURL), "http://localhost:4173", "http://127.0.0.1:4173"].compactMap { $0 }
    }

    /// `wss` for an https base, `ws` otherwise; path `/ws` whatever the base's path (PROTOCOL §2.5).
    static func defaultWebSocketURL(publicBaseURL: String, port: Int) -> String {
        guard let url = ParsedURL(publicBaseURL), let host = url.host else { return "ws://localhost:\(port)/ws" }
        let scheme = url.scheme == "https" ? "wss" : "ws"
        var out = scheme + "://" + host
        if let p = url.port, p != ParsedURL.defaultPort(scheme) { out += ":\(p)" }
        return out + "/ws"
    }
}

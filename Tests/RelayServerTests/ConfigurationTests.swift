import NIOCore
import RelayCore
import RelayNATS
import RelayRedis
@testable import RelayServer
import Testing

/// PROTOCOL §8 and DECISIONS "Compatibility scope": environment variables, their defaults, the
/// reference's validation messages in order, and the clamps that let tiny test values start.
@Suite("Configuration", .timeLimit(.minutes(2)))
struct ConfigurationTests {
    /// Reads `env`, failing the test with the message if it is refused.
    static func load(_ env: [String: String]) throws -> RelayConfiguration {
        do {
            return try RelayConfiguration.fromEnvironment(env)
        } catch {
            Issue.record("refused: \(error.description)")
            throw error
        }
    }

    /// The message `env` is refused with, or nil if it is accepted.
    static func refusal(_ env: [String: String]) -> String? {
        do {
            _ = try RelayConfiguration.fromEnvironment(env)
            return nil
        } catch {
            return error.description
        }
    }

    /// The variables checked by "`<NAME>` must be greater than 0.", in PROTOCOL §8's table order.
    static let positiveLimits = [
        "MAX_JSON_BYTES", "MAX_PAIR_REQUESTS_PER_MINUTE", "MAX_DEVICES_PER_SESSION", "SESSION_RETENTION_MS",
        "PAIR_APPROVAL_TIMEOUT_MS", "WS_AUTH_TIMEOUT_MS", "WS_HEARTBEAT_INTERVAL_MS", "WS_HEARTBEAT_TIMEOUT_MS",
        "MAX_PENDING_JOIN_WAITERS", "MAX_WS_MESSAGE_BYTES", "MAX_SOCKET_OUTBOUND_QUEUE",
        "MAX_ACTIVE_WEBSOCKET_CONNECTIONS", "MAX_REMOTE_COMMANDS_PER_MINUTE", "MAX_REMOTE_SESSION_COMMANDS_PER_MINUTE",
        "MAX_SNAPSHOT_REQUESTS_PER_MINUTE", "MAX_WS_MESSAGES_PER_MINUTE", "MAX_REMOTE_COMMAND_TEXT_BYTES",
    ]

    /// PROTOCOL §8's table: every variable and the default it documents (`nil`: unset).
    static let protocolDefaults: [(name: String, value: String?)] = [
        ("HOST", "0.0.0.0"), ("PORT", "8787"), ("PUBLIC_BASE_URL", nil), ("ALLOWED_ORIGINS", nil),
        ("MAX_JSON_BYTES", "65536"), ("MAX_PAIR_REQUESTS_PER_MINUTE", "60"), ("MAX_DEVICES_PER_SESSION", "2"),
        ("SESSION_RETENTION_MS", "600000"), ("PAIR_APPROVAL_TIMEOUT_MS", "45000"), ("WS_AUTH_TIMEOUT_MS", "10000"),
        ("WS_HEARTBEAT_INTERVAL_MS", "20000"), ("WS_HEARTBEAT_TIMEOUT_MS", "60000"), ("TOKEN_ROTATION_GRACE_MS", "30000"),
        ("MAX_PENDING_JOIN_WAITERS", "64"), ("MAX_WS_MESSAGE_BYTES", "65536"), ("MAX_SOCKET_OUTBOUND_QUEUE", "256"),
        ("MAX_ACTIVE_WEBSOCKET_CONNECTIONS", "10000"), ("MAX_REMOTE_COMMANDS_PER_MINUTE", "240"),
        ("MAX_REMOTE_SESSION_COMMANDS_PER_MINUTE", "480"), ("MAX_SNAPSHOT_REQUESTS_PER_MINUTE", "60"),
        ("MAX_WS_MESSAGES_PER_MINUTE", "1200"), ("MAX_REMOTE_COMMAND_TEXT_BYTES", "16384"), ("REDIS_URL", nil),
        ("REDIS_KEY_PREFIX", "codexchat:remote-control:relay"), ("NATS_URL", nil),
        ("NATS_SUBJECT_PREFIX", "codexchat.remote.relay"), ("NATS_HMAC_SECRET", nil), ("NATS_REPLAY_WINDOW_MS", "120000"),
        ("NATS_MAX_CLOCK_SKEW_MS", "30000"), ("TRUST_PROXY", "false"), ("ALLOW_LEGACY_QUERY_TOKEN_AUTH", "false"),
    ]

    static let natsSecret = String(repeating: "s", count: 32)

    // MARK: Defaults

    @Test func tracingIsOffUnlessAnOTLPEndpointIsNamed() throws {
        #expect(try Self.load([:]).tracing == nil)
        let base = try #require(try Self.load(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"]).tracing)
        #expect(base == TracingSettings(tracesURL: "http://collector:4318/v1/traces", wireProtocol: "http/protobuf", serviceName: "relay"))
        #expect(try Self.load(["OTEL_EXPORTER_OTLP_ENDPOINT": "https://c/otlp/"]).tracing?.tracesURL == "https://c/otlp/v1/traces")
        let specific = try Self.load([
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9000/in",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_SERVICE_NAME": "relay-eu",
        ])
        #expect(specific.tracing == TracingSettings(tracesURL: "http://traces:9000/in", wireProtocol: "http/json", serviceName: "relay-eu"))
        #expect(try Self.load(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"]).tracing == nil)
        #expect(try Self.load(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"]).tracing == nil)

        #expect(Self.refusal(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"])?
            .contains("OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or http/json") == true)
        #expect(Self.refusal(["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"])?
            .contains("OTEL_EXPORTER_OTLP_ENDPOINT must be an http or https URL") == true)
        #expect(Self.refusal(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "zipkin"])?
            .contains("OTEL_TRACES_EXPORTER must be otlp or none") == true)
    }

    @Test func eventLoopThreadsDefaultsToOneAndRefusesZeroAndTooMany() throws {
        #expect(try Self.load([:]).eventLoopThreads == 1)
        #expect(try Self.load(["EVENT_LOOP_THREADS": "4"]).eventLoopThreads == 4)
        for bad in ["0", "257", "two", "-1"] {
            let message = try #require(Self.refusal(["EVENT_LOOP_THREADS": bad]), "EVENT_LOOP_THREADS=\(bad) was accepted")
            #expect(message.contains("EVENT_LOOP_THREADS"))
        }
    }

    @Test func defaultsEqualTheProtocolTable() throws {
        let c = try Self.load([:])
        #expect(c.host == "0.0.0.0")
        #expect(c.port == 8787)
        #expect(c.publicBaseURL == "http://localhost:8787")
        #expect(c.maxJSONBytes == 65_536)
        #expect(c.core.maxPairRequestsPerMinute == 60)
        #expect(c.core.maxDevicesPerSession == 2)
        #expect(c.core.sessionRetentionMillis == 600_000)
        #expect(c.core.pairApprovalTimeoutMillis == 45_000)
        #expect(c.wsAuthTimeoutMillis == 10_000)
        #expect(c.heartbeatIntervalMillis == 20_000)
        #expect(c.heartbeatTimeoutMillis == 60_000)
        #expect(c.core.tokenRotationGraceMillis == 30_000)
        #expect(c.core.maxPendingJoinWaiters == 64)
        #expect(c.maxWSMessageBytes == 65_536)
        #expect(c.maxSocketOutboundQueue == 256)
        #expect(c.core.maxActiveWebSockets == 10_000)
        #expect(c.core.maxRemoteCommandsPerMinute == 240)
        #expect(c.core.maxRemoteSessionCommandsPerMinute == 480)
        #expect(c.core.maxSnapshotRequestsPerMinute == 60)
        #expect(c.maxWSMessagesPerMinute == 1_200)
        #expect(c.core.maxRemoteCommandTextBytes == 16_384)
        #expect(c.redisURL == nil)
        #expect(c.redisKeyPrefix == "codexchat:remote-control:relay")
        #expect(c.natsURL == nil)
        #expect(c.natsSubjectPrefix == "codexchat.remote.relay")
        #expect(c.natsHMACSecret == nil)
        #expect(c.natsReplayWindowMillis == 120_000)
        #expect(c.natsMaxClockSkewMillis == 30_000)
        #expect(c.trustedProxyHops == 0)
        #expect(!c.allowLegacyQueryTokenAuth)
        // Fixed or Node-only values the relay also honours.
        #expect(c.sweepIntervalMillis == 30_000)
        #expect(c.core.trustedSessionTTLMillis == 30 * 24 * 3_600_000)
    }

    @Test func defaultOriginsAndWebSocketURLComeFromTheDefaultBaseURL() throws {
        let c = try Self.load([:])
        #expect(c.core.origins.origins == ["http://localhost:8787", "http://localhost:4173", "http://127.0.0.1:4173"])
        #expect(!c.core.origins.allowsAll)
        #expect(c.core.defaultWebSocketURL == "ws://localhost:8787/ws")
    }

    @Test func defaultBaseURLFollowsThePort() throws {
        let c = try Self.load(["PORT": "9000"])
        #expect(c.publicBaseURL == "http://localhost:9000")
        #expect(c.core.defaultWebSocketURL == "ws://localhost:9000/ws")
        #expect(c.core.origins.origins.contains("http://localhost:9000"))
    }

    @Test(arguments: [
        ("https://h/rc", "wss://h/ws", "https://h"),
        ("https://relay.example:443/rc/", "wss://relay.example/ws", "https://relay.example"),
        ("http://Relay.Example:8080/base", "ws://relay.example:8080/ws", "http://relay.example:8080"),
        ("https://relay.example:8443", "wss://relay.example:8443/ws", "https://relay.example:8443"),
    ])
    func publicBaseURLGivesTheDefaultWebSocketURLAndAllowedOrigin(base: String, wsURL: String, origin: String) throws {
        let c = try Self.load(["PUBLIC_BASE_URL": base])
        #expect(c.core.defaultWebSocketURL == wsURL)
        #expect(c.core.origins.origins == [origin, "http://localhost:4173", "http://127.0.0.1:4173"])
    }

    @Test func explicitAllowedOriginsReplaceTheDefaults() throws {
        let c = try Self.load(["PUBLIC_BASE_URL": "https://h/rc", "ALLOWED_ORIGINS": " https://app.example/ ,, capacitor://localhost,"])
        #expect(c.core.origins.origins == ["https://app.example", "null"])
        #expect(try Self.load(["ALLOWED_ORIGINS": "*"]).core.origins.allowsAll)
    }

    // MARK: Reference validation (PROTOCOL §8, §10.2 config tests)

    @Test(arguments: ["not a url", "http://", "http//missing-colon.example", "://h"])
    func validateRejectsInvalidPublicBaseURL(base: String) {
        let message = Self.refusal(["PUBLIC_BASE_URL": base])
        #expect(message?.hasPrefix("PUBLIC_BASE_URL is invalid") == true, "\(message ?? "accepted")")
    }

    @Test(arguments: ["ftp://files.example", "ws://h/ws", "wss://h", "capacitor://localhost"])
    func validateRejectsPublicBaseURLWithoutHTTPScheme(base: String) {
        #expect(Self.refusal(["PUBLIC_BASE_URL": base]) == "PUBLIC_BASE_URL must use http or https.")
    }

    @Test(arguments: positiveLimits)
    func validateRejectsZeroLimits(name: String) {
        #expect(Self.refusal([name: "0"]) == "\(name) must be greater than 0.")
    }

    @Test func zeroLimitsAreReportedInTableOrder() {
        var env = Dictionary(uniqueKeysWithValues: Self.positiveLimits.map { ($0, "0") })
        for name in Self.positiveLimits {
            #expect(Self.refusal(env) == "\(name) must be greater than 0.")
            env[name] = nil
        }
        #expect(Self.refusal(env) == nil)
    }

    @Test func validateRejectsZeroPairRequestLimitByName() {
        let message = Self.refusal(["MAX_PAIR_REQUESTS_PER_MINUTE": "0"])
        #expect(message?.contains("MAX_PAIR_REQUESTS_PER_MINUTE") == true)
    }

    @Test func zeroTokenRotationGraceMeansNoGrace() throws {
        #expect(try Self.load(["TOKEN_ROTATION_GRACE_MS": "0"]).core.tokenRotationGraceMillis == 0)
    }

    @Test func validateRejectsEmptyHostAndPortsOutOfRange() {
        #expect(Self.refusal(["HOST": ""]) == "HOST must not be empty.")
        #expect(Self.refusal(["HOST": "   "]) == "HOST must not be empty.")
        #expect(Self.refusal(["PORT": "65536"]) == "PORT must be a whole number from 0 to 65535 (got \"65536\").")
        #expect(Self.refusal(["PORT": "-1"]) == "PORT must be a whole number from 0 to 65535 (got \"-1\").")
    }

    /// `PORT=0` asks the system for a port; the default `wsURL` then follows the bound port
    /// (``RelayApplication`` sets it once listening), unless `PUBLIC_BASE_URL` names one.
    @Test func portZeroIsAccepted() throws {
        let c = try Self.load(["PORT": "0"])
        #expect(c.port == 0)
        #expect(!c.publicBaseURLConfigured)
        #expect(try Self.load(["PORT": "0", "PUBLIC_BASE_URL": "https://relay.example.com"]).publicBaseURLConfigured)
    }

    @Test func validateRejectsHeartbeatTimeoutBelowInterval() {
        #expect(Self.refusal(["WS_HEARTBEAT_INTERVAL_MS": "30000", "WS_HEARTBEAT_TIMEOUT_MS": "29999"])
            == "WS_HEARTBEAT_TIMEOUT_MS must be greater than or equal to WS_HEARTBEAT_INTERVAL_MS.")
        #expect(Self.refusal(["WS_HEARTBEAT_INTERVAL_MS": "70000"])
            == "WS_HEARTBEAT_TIMEOUT_MS must be greater than or equal to WS_HEARTBEAT_INTERVAL_MS.")
    }

    @Test(arguments: ["", " ", " , ,", "not a url", "null"])
    func validateRejectsAllowedOriginsWithoutAnyOrigin(value: String) {
        #expect(Self.refusal(["ALLOWED_ORIGINS": value]) == "ALLOWED_ORIGINS must contain at least one origin.")
    }

    @Test func validationStopsAtTheFirstFailureInReferenceOrder() {
        let failures: [(String, String, String)] = [
            ("HOST", "", "HOST must not be empty."),
            ("PORT", "70000", "PORT must be a whole number from 0 to 65535 (got \"70000\")."),
            ("PUBLIC_BASE_URL", "ftp://x", "PUBLIC_BASE_URL must use http or https."),
            ("MAX_JSON_BYTES", "0", "MAX_JSON_BYTES must be greater than 0."),
            ("WS_HEARTBEAT_INTERVAL_MS", "90000", "WS_HEARTBEAT_TIMEOUT_MS must be greater than or equal to WS_HEARTBEAT_INTERVAL_MS."),
            ("ALLOWED_ORIGINS", "", "ALLOWED_ORIGINS must contain at least one origin."),
            ("NATS_REPLAY_WINDOW_MS", "0", "NATS_REPLAY_WINDOW_MS must be greater than 0."),
        ]
        var env = ["NATS_URL": "nats://127.0.0.1:4222", "NATS_HMAC_SECRET": Self.natsSecret]
        for (name, value, _) in failures { env[name] = value }
        for (name, _, message) in failures {
            #expect(Self.refusal(env) == message)
            env[name] = nil
        }
        #expect(Self.refusal(env) == nil)
    }

    @Test(arguments: ["development", "staging", "production"])
    func natsWithoutAnHMACSecretIsRefusedInEveryEnvironment(environment: String) {
        #expect(Self.refusal(["NATS_URL": "nats://127.0.0.1:4222", "RELAY_ENV": environment])
            == "NATS_HMAC_SECRET must be set when NATS_URL is configured.")
        #expect(Self.refusal(["NATS_URL": "nats://127.0.0.1:4222", "RELAY_ENV": environment, "NATS_HMAC_SECRET": "   "])
            == "NATS_HMAC_SECRET must be set when NATS_URL is configured.")
        #expect(Self.refusal(["NATS_URL": "nats://127.0.0.1:4222", "RELAY_ENV": environment, "NATS_ALLOW_UNSIGNED": "false"])
            == "NATS_HMAC_SECRET must be set when NATS_URL is configured.")
    }

    @Test func anUnsignedBusStartsOnlyWhenAskedForByName() throws {
        let c = try Self.load(["NATS_URL": "nats://127.0.0.1:4222", "NATS_ALLOW_UNSIGNED": "true"])
        #expect(c.natsAllowUnsigned)
        #expect(c.nats?.secret == nil)
    }

    // MARK: HTTP limits and edge budgets

    @Test func httpLimitsHaveTheirDocumentedDefaults() throws {
        let c = try Self.load([:])
        #expect(c.http.idleTimeoutMillis == 65_000)
        #expect(c.http.headerTimeoutMillis == 20_000)
        #expect(c.http.bodyTimeoutMillis == 30_000)
        #expect(c.http.maxHeaderBytes == 16_384)
        #expect(c.http.maxConnections == 4_096)
        #expect(c.core.maxWSAuthFailuresPerMinute == 60)
        #expect(c.core.maxJoinTokenTTLMillis == 600_000)
        for name in [
            "HTTP_IDLE_TIMEOUT_MS", "HTTP_HEADER_TIMEOUT_MS", "HTTP_BODY_TIMEOUT_MS", "MAX_HTTP_HEADER_BYTES",
            "MAX_HTTP_CONNECTIONS", "MAX_WS_AUTH_FAILURES_PER_MINUTE", "MAX_JOIN_TOKEN_TTL_MS", "NATS_ALLOW_UNSIGNED",
        ] {
            #expect(RelayConfiguration.variables.contains { $0.name == name }, "\(name) is not in --help")
        }
    }

    @Test func httpLimitsAreReadAndZeroIsRefused() throws {
        let c = try Self.load([
            "HTTP_IDLE_TIMEOUT_MS": "1001", "HTTP_HEADER_TIMEOUT_MS": "1002", "HTTP_BODY_TIMEOUT_MS": "1003",
            "MAX_HTTP_HEADER_BYTES": "4096", "MAX_HTTP_CONNECTIONS": "7", "MAX_WS_AUTH_FAILURES_PER_MINUTE": "5",
            "MAX_JOIN_TOKEN_TTL_MS": "1234",
        ])
        #expect(c.http == {
            var limits = HTTPLimits()
            limits.idleTimeoutMillis = 1001
            limits.headerTimeoutMillis = 1002
            limits.bodyTimeoutMillis = 1003
            limits.maxHeaderBytes = 4096
            limits.maxConnections = 7
            return limits
        }())
        #expect(c.core.maxWSAuthFailuresPerMinute == 5)
        #expect(c.core.maxJoinTokenTTLMillis == 1234)
        for name in ["HTTP_IDLE_TIMEOUT_MS", "HTTP_HEADER_TIMEOUT_MS", "HTTP_BODY_TIMEOUT_MS", "MAX_HTTP_CONNECTIONS",
                     "MAX_WS_AUTH_FAILURES_PER_MINUTE", "MAX_JOIN_TOKEN_TTL_MS"] {
            #expect(Self.refusal([name: "0"]) == "\(name) must be greater than 0.")
        }
        #expect(Self.refusal(["MAX_HTTP_HEADER_BYTES": "100"]) == "MAX_HTTP_HEADER_BYTES must be at least 1024.")
    }

    @Test func printingTheConfigurationShowsNoSecret() throws {
        let secret = "hmac-secret-" + String(repeating: "x", count: 32)
        let previous = "hmac-previous-" + String(repeating: "y", count: 32)
        let c = try Self.load([
            "REDIS_URL": "redis://admin:redis-pass-123@cache:6379/2", "NATS_URL": "nats://bus-user:nats-pass-456@bus:4222",
            "NATS_HMAC_SECRET": secret, "NATS_HMAC_PREVIOUS_SECRET": previous,
        ])
        var dumped = ""
        dump(c, to: &dumped)
        for text in ["\(c)", String(reflecting: c), dumped] {
            for leaked in [secret, previous, "redis-pass-123", "nats-pass-456"] {
                #expect(!text.contains(leaked), "\(leaked) printed")
            }
        }
        #expect(c.natsHMACSecret == secret)
        #expect(c.redisURL == "redis://admin:redis-pass-123@cache:6379/2")
    }

    @Test func validateRejectsShortNATSHMACSecret() throws {
        let nats = "nats://127.0.0.1:4222"
        let short = Self.refusal(["NATS_URL": nats, "NATS_HMAC_SECRET": "too-short"])
        #expect(short?.contains("at least 32") == true)
        #expect(short?.hasPrefix("NATS_HMAC_SECRET") == true)
        // Length is counted after trimming, in UTF-8 bytes.
        let padded31 = "  " + String(repeating: "x", count: 31) + "  "
        #expect(Self.refusal(["NATS_URL": nats, "NATS_HMAC_SECRET": padded31])?.contains("at least 32") == true)
        #expect(try Self.load(["NATS_URL": nats, "NATS_HMAC_SECRET": String(repeating: "é", count: 16)]).natsHMACSecret?.utf8.count == 32)
        #expect(try Self.load(["NATS_URL": nats, "NATS_HMAC_SECRET": " " + Self.natsSecret + " "]).natsHMACSecret == Self.natsSecret)
    }

    @Test func validateRejectsZeroNATSReplayWindow() {
        #expect(Self.refusal(["NATS_URL": "nats://127.0.0.1:4222", "NATS_HMAC_SECRET": Self.natsSecret, "NATS_REPLAY_WINDOW_MS": "0"])
            == "NATS_REPLAY_WINDOW_MS must be greater than 0.")
    }

    @Test func validateRejectsZeroNATSClockSkew() {
        #expect(Self.refusal(["NATS_URL": "nats://127.0.0.1:4222", "NATS_HMAC_SECRET": Self.natsSecret, "NATS_MAX_CLOCK_SKEW_MS": "0"])
            == "NATS_MAX_CLOCK_SKEW_MS must be greater than 0.")
    }

    @Test func clusterURLsAreParsedAtStart() throws {
        let c = try Self.load([
            "REDIS_URL": "redis://:pw@10.0.0.5:6380/2", "NATS_URL": "tls://user:pass@nats-a:4222,tls://nats-b:4222",
            "NATS_HMAC_SECRET": Self.natsSecret, "NATS_SUBJECT_PREFIX": "relay.prod",
        ])
        #expect(c.redis?.database == 2)
        #expect(c.redis?.password == "pw")
        #expect(c.nats?.servers.tls == true)
        #expect(c.nats?.servers.servers.count == 2)
        #expect(c.nats?.subjectPrefix == "relay.prod")
        #expect(c.nats?.secret == Self.natsSecret)
        // What goes to logs carries no secret.
        #expect(!"\(c.redis!)".contains("pw"))
        #expect(!"\(c.nats!.servers)".contains("pass"))
    }

    @Test func aSchemeTheCLibraryCannotServeIsRefusedWithWhatToDoInstead() throws {
        let refusal = try #require(Self.refusal(["REDIS_URL": "rediss://cache.example:6380"]))
        #expect(refusal.hasPrefix("REDIS_URL"))
        #expect(refusal.contains("TLS"))
        #expect(refusal.contains("redis://"))
    }

    @Test(arguments: [
        ("REDIS_URL", "http://cache:6379"), ("REDIS_URL", "redis://cache:notaport"), ("REDIS_URL", "redis://cache/db9x"),
        ("NATS_URL", "http://nats:4222"), ("NATS_URL", "nats://nats:99999"),
    ])
    func badClusterURLsAreRefusedNamingTheVariable(name: String, value: String) throws {
        var env = [name: value]
        if name == "NATS_URL" { env["NATS_HMAC_SECRET"] = Self.natsSecret }
        let refusal = try #require(Self.refusal(env))
        #expect(refusal.contains(name), "\(refusal)")
    }

    @Test func aSubjectPrefixNATSCannotUseIsRefused() throws {
        let refusal = try #require(Self.refusal([
            "NATS_URL": "nats://127.0.0.1:4222", "NATS_HMAC_SECRET": Self.natsSecret, "NATS_SUBJECT_PREFIX": "relay.*",
        ]))
        #expect(refusal.contains("NATS_SUBJECT_PREFIX"))
    }

    @Test func natsSettingsAreOnlyValidatedWhenNATSIsConfigured() throws {
        let c = try Self.load(["NATS_HMAC_SECRET": "short", "NATS_REPLAY_WINDOW_MS": "0", "NATS_MAX_CLOCK_SKEW_MS": "0"])
        #expect(c.natsURL == nil)
    }

    // MARK: Numbers

    @Test(arguments: [
        ("PORT", "abc"), ("PORT", "70000"), ("PORT", "-1"), ("MAX_JSON_BYTES", " 5"), ("MAX_JSON_BYTES", "1e3"),
        ("SESSION_RETENTION_MS", "-5"), ("TOKEN_ROTATION_GRACE_MS", "soon"), ("WS_HEARTBEAT_INTERVAL_MS", "20s"),
        ("MAX_SOCKET_OUTBOUND_QUEUE", "1.5"), ("SESSION_SWEEP_INTERVAL_MS", "x"), ("NATS_REPLAY_WINDOW_MS", "2m"),
    ])
    func unparseableNumbersAreRefusedNamingTheVariable(name: String, value: String) {
        var env = [name: value]
        if name.hasPrefix("NATS_") {
            env["NATS_URL"] = "nats://127.0.0.1:4222"
            env["NATS_HMAC_SECRET"] = Self.natsSecret
        }
        let message = Self.refusal(env)
        #expect(message?.hasPrefix(name + " ") == true, "\(message ?? "accepted")")
    }

    @Test func everyNumericVariableIsReadIntoItsSetting() throws {
        let c = try Self.load([
            "PORT": "9001", "MAX_JSON_BYTES": "1001", "MAX_PAIR_REQUESTS_PER_MINUTE": "1002", "MAX_DEVICES_PER_SESSION": "3",
            "SESSION_RETENTION_MS": "1004", "PAIR_APPROVAL_TIMEOUT_MS": "1005", "WS_AUTH_TIMEOUT_MS": "1006",
            "WS_HEARTBEAT_INTERVAL_MS": "1007", "WS_HEARTBEAT_TIMEOUT_MS": "3008", "TOKEN_ROTATION_GRACE_MS": "1009",
            "MAX_PENDING_JOIN_WAITERS": "1010", "MAX_WS_MESSAGE_BYTES": "1011", "MAX_SOCKET_OUTBOUND_QUEUE": "1012",
            "MAX_ACTIVE_WEBSOCKET_CONNECTIONS": "1013", "MAX_REMOTE_COMMANDS_PER_MINUTE": "1014",
            "MAX_REMOTE_SESSION_COMMANDS_PER_MINUTE": "1015", "MAX_SNAPSHOT_REQUESTS_PER_MINUTE": "1016",
            "MAX_WS_MESSAGES_PER_MINUTE": "1017", "MAX_REMOTE_COMMAND_TEXT_BYTES": "1018",
            "SESSION_SWEEP_INTERVAL_MS": "1019", "TRUSTED_SESSION_TTL_MS": "1020",
            "NATS_URL": "nats://127.0.0.1:4222", "NATS_HMAC_SECRET": Self.natsSecret,
            "NATS_REPLAY_WINDOW_MS": "1021", "NATS_MAX_CLOCK_SKEW_MS": "1022",
        ])
        #expect(c.port == 9001)
        #expect(c.maxJSONBytes == 1001)
        #expect(c.core.maxPairRequestsPerMinute == 1002)
        #expect(c.core.maxDevicesPerSession == 3)
        #expect(c.core.sessionRetentionMillis == 1004)
        #expect(c.core.pairApprovalTimeoutMillis == 1005)
        #expect(c.wsAuthTimeoutMillis == 1006)
        #expect(c.heartbeatIntervalMillis == 1007)
        #expect(c.heartbeatTimeoutMillis == 3008)
        #expect(c.core.tokenRotationGraceMillis == 1009)
        #expect(c.core.maxPendingJoinWaiters == 1010)
        #expect(c.maxWSMessageBytes == 1011)
        #expect(c.maxSocketOutboundQueue == 1012)
        #expect(c.core.maxActiveWebSockets == 1013)
        #expect(c.core.maxRemoteCommandsPerMinute == 1014)
        #expect(c.core.maxRemoteSessionCommandsPerMinute == 1015)
        #expect(c.core.maxSnapshotRequestsPerMinute == 1016)
        #expect(c.maxWSMessagesPerMinute == 1017)
        #expect(c.core.maxRemoteCommandTextBytes == 1018)
        #expect(c.sweepIntervalMillis == 1019)
        #expect(c.core.trustedSessionTTLMillis == 1020)
        #expect(c.natsReplayWindowMillis == 1021)
        #expect(c.natsMaxClockSkewMillis == 1022)
    }

    @Test func tinyTestValuesStartTheRelay() throws {
        let c = try Self.load([
            "SESSION_SWEEP_INTERVAL_MS": "50", "TOKEN_ROTATION_GRACE_MS": "120", "SESSION_RETENTION_MS": "100",
            "PAIR_APPROVAL_TIMEOUT_MS": "100", "WS_AUTH_TIMEOUT_MS": "50", "WS_HEARTBEAT_INTERVAL_MS": "50",
            "WS_HEARTBEAT_TIMEOUT_MS": "100", "MAX_SOCKET_OUTBOUND_QUEUE": "1", "TRUSTED_SESSION_TTL_MS": "200",
        ])
        #expect(c.sweepIntervalMillis == 50)
        #expect(c.core.tokenRotationGraceMillis == 120)
        #expect(c.core.sessionRetentionMillis == 100)
        #expect(c.core.pairApprovalTimeoutMillis == 100)
        #expect(c.wsAuthTimeoutMillis == 50)
        #expect(c.core.trustedSessionTTLMillis == 200)
    }

    @Test func heartbeatIsClampedToOneSecondAndTimeoutToTwoIntervals() throws {
        let tiny = try Self.load(["WS_HEARTBEAT_INTERVAL_MS": "50", "WS_HEARTBEAT_TIMEOUT_MS": "100"])
        #expect(tiny.effectiveHeartbeatIntervalMillis == 1_000)
        #expect(tiny.effectiveHeartbeatTimeoutMillis == 2_000)

        let tight = try Self.load(["WS_HEARTBEAT_INTERVAL_MS": "20000", "WS_HEARTBEAT_TIMEOUT_MS": "30000"])
        #expect(tight.effectiveHeartbeatIntervalMillis == 20_000)
        #expect(tight.effectiveHeartbeatTimeoutMillis == 40_000)

        let roomy = try Self.load(["WS_HEARTBEAT_INTERVAL_MS": "1500", "WS_HEARTBEAT_TIMEOUT_MS": "10000"])
        #expect(roomy.effectiveHeartbeatIntervalMillis == 1_500)
        #expect(roomy.effectiveHeartbeatTimeoutMillis == 10_000)

        let defaults = try Self.load([:])
        #expect(defaults.effectiveHeartbeatIntervalMillis == 20_000)
        #expect(defaults.effectiveHeartbeatTimeoutMillis == 60_000)
    }

    @Test func outboundQueueHoldsAtLeastEightFrames() throws {
        #expect(try Self.load(["MAX_SOCKET_OUTBOUND_QUEUE": "1"]).effectiveOutboundQueue == 8)
        #expect(try Self.load(["MAX_SOCKET_OUTBOUND_QUEUE": "7"]).effectiveOutboundQueue == 8)
        #expect(try Self.load(["MAX_SOCKET_OUTBOUND_QUEUE": "9"]).effectiveOutboundQueue == 9)
        #expect(try Self.load([:]).effectiveOutboundQueue == 256)
    }

    // MARK: Flags

    @Test(arguments: [
        ("true", 1), ("TRUE", 1), (" yes ", 1), ("on", 1), ("1", 1), ("false", 0), ("no", 0), ("off", 0), ("0", 0),
        ("2", 2), ("3", 3), ("", 0),
    ])
    func trustProxyIsAFlagOrANumberOfHops(value: String, hops: Int) throws {
        #expect(try Self.load(["TRUST_PROXY": value]).trustedProxyHops == hops)
    }

    @Test(arguments: ["maybe", "-1", "two"])
    func unreadableTrustProxyIsRefusedNamingTheVariable(value: String) {
        #expect(Self.refusal(["TRUST_PROXY": value])?.hasPrefix("TRUST_PROXY ") == true)
    }

    @Test func legacyQueryTokenAuthIsOffUnlessEnabled() throws {
        #expect(try Self.load(["ALLOW_LEGACY_QUERY_TOKEN_AUTH": "1"]).allowLegacyQueryTokenAuth)
        #expect(try Self.load(["ALLOW_LEGACY_QUERY_TOKEN_AUTH": " On "]).allowLegacyQueryTokenAuth)
        #expect(try !Self.load(["ALLOW_LEGACY_QUERY_TOKEN_AUTH": "false"]).allowLegacyQueryTokenAuth)
    }

    @Test func redisAndNATSStringsAreTrimmedAndEmptyMeansUnset() throws {
        let c = try Self.load([
            "REDIS_URL": " redis://127.0.0.1:6379 ", "REDIS_KEY_PREFIX": " codexchat:remote-relay ",
            "NATS_URL": "  ", "NATS_SUBJECT_PREFIX": "",
        ])
        #expect(c.redisURL == "redis://127.0.0.1:6379")
        #expect(c.redisKeyPrefix == "codexchat:remote-relay")
        #expect(c.natsURL == nil)
        #expect(c.natsSubjectPrefix == "codexchat.remote.relay")
    }

    // MARK: The variables table

    @Test func variablesTableListsEveryProtocolVariable() {
        let names = RelayConfiguration.variables.map(\.name)
        #expect(Set(names).count == names.count, "duplicate entries")
        for (name, _) in Self.protocolDefaults {
            #expect(names.contains(name), "\(name) missing")
        }
        #expect(names.contains("SESSION_SWEEP_INTERVAL_MS"))
    }

    @Test func variablesTableShowsTheProtocolDefaults() {
        let shown = Dictionary(uniqueKeysWithValues: RelayConfiguration.variables.map { ($0.name, $0.defaultValue) })
        for case let (name, value?) in Self.protocolDefaults {
            #expect(shown[name] == value, "\(name)")
        }
    }

    // MARK: HOST (DECISIONS 9)

    @Test(arguments: ["127.0.0.1", "0.0.0.0", "[::]", "::", "[::1]", "localhost"])
    func hostValidationAcceptsLoopbackAndWildcardAddresses(host: String) throws {
        let address = try HostValidation.resolve(host: host, port: 8787)
        #expect(address.port == 8787)
    }

    @Test func hostValidationAcceptsAnAddressOfALocalInterface() throws {
        let local = HostValidation.localAddresses().filter { !$0.hasPrefix("127.") && $0 != "::1" }
        try #require(!local.isEmpty, "this machine has no interface besides loopback")
        for ip in local.sorted() {
            #expect(try HostValidation.resolve(host: ip.contains(":") ? "[\(ip)]" : ip, port: 8787).ipAddress == ip)
        }
    }

    @Test func hostValidationRefusesAnAddressOfNoLocalInterfaceNamingHOST() throws {
        let local = HostValidation.localAddresses()
        let foreign = try #require(["192.0.2.1", "198.51.100.254", "203.0.113.254"].first { !local.contains($0) })
        let error = #expect(throws: ConfigurationError.self) { try HostValidation.resolve(host: foreign, port: 8787) }
        #expect(error?.description.hasPrefix("HOST ") == true)
        #expect(error?.description.contains(foreign) == true)
    }

    @Test func hostValidationRefusesGarbageNamingHOST() {
        let error = #expect(throws: ConfigurationError.self) { try HostValidation.resolve(host: "[not an address]", port: 8787) }
        #expect(error?.description.hasPrefix("HOST ") == true)
    }

    // MARK: Client address (PROTOCOL §2.4, DECISIONS 7)

    static let peer = try! SocketAddress(ipAddress: "10.0.0.5", port: 40_000)

    static func clientIP(_ forwardedFor: [String], hops: Int) -> String {
        ClientAddress.resolve(peer: peer, forwardedFor: forwardedFor, trustedHops: hops)
    }

    @Test func withoutTrustedHopsThePeerAddressIsTheClient() {
        #expect(Self.clientIP([], hops: 0) == "10.0.0.5")
        #expect(Self.clientIP(["203.0.113.7"], hops: 0) == "10.0.0.5")
    }

    @Test func withoutAForwardedForHeaderThePeerAddressIsTheClient() {
        #expect(Self.clientIP([], hops: 1) == "10.0.0.5")
        #expect(Self.clientIP([], hops: 2) == "10.0.0.5")
        #expect(ClientAddress.resolve(peer: nil, forwardedFor: [], trustedHops: 1) == "unknown")
    }

    @Test func oneTrustedHopTakesTheRightMostEntry() {
        #expect(Self.clientIP(["203.0.113.7"], hops: 1) == "203.0.113.7")
        // The left entry was sent by the client itself: spoofable, ignored.
        #expect(Self.clientIP(["198.51.100.1, 203.0.113.7"], hops: 1) == "203.0.113.7")
        #expect(Self.clientIP(["  198.51.100.1 ,203.0.113.7  "], hops: 1) == "203.0.113.7")
    }

    @Test func twoTrustedHopsTakeTheSecondEntryFromTheRight() {
        #expect(Self.clientIP(["198.51.100.1, 203.0.113.7, 10.1.2.3"], hops: 2) == "203.0.113.7")
        #expect(Self.clientIP(["203.0.113.7, 10.1.2.3"], hops: 2) == "203.0.113.7")
    }

    @Test func forwardedAddressesAreCanonicalized() {
        #expect(Self.clientIP(["2001:DB8:0:0:0:0:0:1"], hops: 1) == "2001:db8::1")
    }

    @Test(arguments: ["not-an-ip", "203.0.113.7:443", "[2001:db8::1]", "[2001:db8::1]:443", "unknown", "", " , "])
    func anUnparseableTrustedEntryFallsBackToThePeer(entry: String) {
        #expect(Self.clientIP([entry], hops: 1) == "10.0.0.5")
        // A parseable entry further left does not stand in for the one the trusted proxy wrote.
        #expect(Self.clientIP(["203.0.113.7, \(entry)"], hops: 1) == "10.0.0.5")
    }
}

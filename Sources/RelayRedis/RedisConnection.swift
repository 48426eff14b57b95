// A pipelined Redis client on its own thread, so hiredis's blocking I/O stays off Swift's pool.

import Logging

/// An asynchronous, pipelined connection to one Redis server that reconnects by itself.
///
/// One dedicated thread owns a blocking hiredis context. Callers enqueue commands and suspend;
/// the thread takes everything queued, writes it in one go (pipelining), reads the replies in
/// order and resumes each caller. Nothing here blocks a Swift concurrency thread.
///
/// When the connection breaks, commands in flight fail (``RedisError/Kind/connectionLost`` or
/// ``RedisError/Kind/timeout``), the connection becomes unavailable and the thread reconnects
/// with exponential backoff and jitter. While unavailable, commands fail at once with
/// ``RedisError/Kind/unavailable`` instead of waiting: the relay answers 503 during an outage
/// rather than holding requests. An idle connection is checked with `PING` every
/// ``Configuration/healthCheckInterval``, so an outage is noticed without traffic.
///
/// Metrics: `relay_redis_command_duration_seconds` (timer, enqueue to reply, per command),
/// `relay_redis_errors_total{kind}` with `kind` one of `connection` (a connect attempt failed or
/// a connection broke), `timeout` (a connection reset because Redis did not answer in time),
/// `server` (an error reply), `unavailable` (a command refused while disconnected), and
/// `relay_redis_reconnects_total` (connections re-established after a loss).
public final class RedisConnection: Sendable {
    /// Timeouts and backoff.
    public struct Configuration: Sendable {
        /// How long one TCP (or Unix socket) connect may take.
        public var connectTimeout: Duration
        /// How long Redis may take to answer before the connection is reset and the commands in
        /// flight fail with ``RedisError/Kind/timeout``.
        public var commandTimeout: Duration
        /// The first reconnect delay; it doubles on every failed attempt.
        public var initialBackoff: Duration
        /// The longest reconnect delay.
        public var maximumBackoff: Duration
        /// How long the connection may sit idle before a `PING` checks it.
        public var healthCheckInterval: Duration

        /// Defaults: 2 s connect and command timeouts, backoff 50 ms doubling to 5 s, a health
        /// check after 1 s idle.
        public init(
            connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(2),
            initialBackoff: Duration = .milliseconds(50), maximumBackoff: Duration = .seconds(5),
            healthCheckInterval: Duration = .seconds(1)
        ) {
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.initialBackoff = initialBackoff
            self.maximumBackoff = maximumBackoff
            self.healthCheckInterval = healthCheckInterval
        }
    }

    /// Where this connection goes (``RedisURL/description`` is safe to log).
    public let url: RedisURL
    private let core: RedisConnectionCore
    private let configuration: Configuration
    private let logger: Logger

    /// A connection to `url`. Its thread starts with ``start()`` (the relay's service group calls it
    /// in `run`) or on first use, then connects at once and keeps reconnecting until
    /// ``shutdown()``. The connection starts unavailable; use ``waitUntilAvailable(timeout:)`` or
    /// `onAvailabilityChange` to know when it is up.
    ///
    /// - Parameter onAvailabilityChange: called with `true` each time a connection is
    ///   established (after `AUTH` and `SELECT`) and `false` each time one is lost; not called for
    ///   ``shutdown()``. It runs on the connection thread and must return quickly.
    /// - Parameter sentinel: when set, the master is asked of these Sentinels before every
    ///   connect and a failover is followed (``RedisSentinelConfiguration``); `url` then supplies
    ///   only the credentials and the database.
    public convenience init(
        url: RedisURL, sentinel: RedisSentinelConfiguration? = nil, configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "relay.redis"), onAvailabilityChange: (@Sendable (Bool) -> Void)? = nil
    ) {
        var logger = logger
        logger[metadataKey: "redis"] = "\(sentinel.map(\.description) ?? url.description)"
        self.init(
            url: url,
            sentinel: sentinel.map { RedisSentinel(configuration: $0, connectTimeout: configuration.connectTimeout, logger: logger) },
            configuration: configuration, logger: logger, onAvailabilityChange: onAvailabilityChange)
    }

    private init(
        url: RedisURL, sentinel: RedisSentinel?, configuration: Configuration, logger: Logger,
        onAvailabilityChange: (@Sendable (Bool) -> Void)?
    ) {
        self.url = url
        self.configuration = configuration
        self.logger = logger
        core = RedisConnectionCore(
            url: url, configuration: configuration, logger: logger, sentinel: sentinel, onAvailabilityChange: onAvailabilityChange)
    }

    /// A second connection to the same server (or the same Sentinel-chosen master), sharing this
    /// one's view of Sentinel: one watcher, and one count of the failovers followed.
    public func sibling() -> RedisConnection {
        RedisConnection(url: url, sentinel: core.sentinel, configuration: configuration, logger: logger, onAvailabilityChange: nil)
    }

    /// The Sentinels and master name this connection follows; nil without Sentinel.
    public var sentinelConfiguration: RedisSentinelConfiguration? { core.sentinel?.configuration }

    /// The master this connection last reached through Sentinel (`host:port`); nil without Sentinel.
    public var sentinelMaster: String? { core.sentinel?.currentMaster }

    /// Calls `handler` each time the connection reconnects to another server than before (a
    /// replica promoted by a failover, a restarted or replaced server): it may hold older data than
    /// what was read before. Runs on the connection's thread; it must return quickly.
    public func onServerChange(_ handler: @escaping @Sendable () -> Void) {
        core.onServerChange(handler)
    }

    /// Master changes (failovers) this connection followed; 0 without Sentinel.
    public var masterChanges: Int { core.sentinel?.masterChangeCount ?? 0 }

    /// Starts the connection thread; calling it again, or after ``shutdown()``, does nothing.
    public func start() {
        core.start()
    }

    deinit {
        // Without this, a connection nobody shut down would keep its thread forever.
        core.requestShutdown()
    }

    /// True while connected and authenticated.
    public var isAvailable: Bool { core.isAvailable }

    /// Sends one command (its arguments as bytes, the command name first) and returns the reply.
    /// An error reply is returned as ``RedisReply/error(_:)``, not thrown.
    ///
    /// Cancellation does not withdraw a command already queued; it completes or fails within the
    /// command timeout.
    public func send(_ arguments: [[UInt8]]) async throws(RedisError) -> RedisReply {
        let replies = try await pipeline([arguments])
        return replies[0]
    }

    /// Sends one command given as strings (see ``send(_:)-([[UInt8]])``).
    public func send(_ arguments: [String]) async throws(RedisError) -> RedisReply {
        try await send(arguments.map { Array($0.utf8) })
    }

    /// Sends one command given as strings (see ``send(_:)-([[UInt8]])``).
    public func send(_ arguments: String...) async throws(RedisError) -> RedisReply {
        try await send(arguments)
    }

    /// Sends several commands back to back, in one write with nothing in between, and returns
    /// their replies in order. A failure fails the whole pipeline.
    public func pipeline(_ commands: [[[UInt8]]]) async throws(RedisError) -> [RedisReply] {
        precondition(commands.allSatisfy { !$0.isEmpty }, "a Redis command needs at least its name")
        if commands.isEmpty { return [] }
        core.start()
        let result = await withCheckedContinuation { continuation in
            core.enqueue(commands) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Queues commands like ``pipeline(_:)`` without waiting for them: `completion` hears the
    /// outcome later, on the connection's thread (it must not block). For writes that must never
    /// hold up the caller, such as a session's history.
    public func pipelineDetached(_ commands: [[[UInt8]]], completion: @escaping @Sendable (Result<[RedisReply], RedisError>) -> Void) {
        precondition(commands.allSatisfy { !$0.isEmpty }, "a Redis command needs at least its name")
        if commands.isEmpty { return completion(.success([])) }
        core.start()
        core.enqueue(commands, complete: completion)
    }

    /// Waits until the connection is available; returns false if `timeout` passes first or the
    /// connection is shut down.
    public func waitUntilAvailable(timeout: Duration) async -> Bool {
        core.start()
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.core.availability() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Stops the connection: fails queued and in-flight commands with
    /// ``RedisError/Kind/shutdown``, closes the socket and waits for the thread to exit. Commands
    /// sent afterwards fail at once. Calling it again does nothing more.
    public func shutdown() async {
        core.requestShutdown()
        await core.exited()
    }
}

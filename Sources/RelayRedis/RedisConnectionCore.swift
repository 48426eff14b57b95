// The Redis connection's thread and the queue it shares with its callers; hiredis lives here.

import CHiredis
import Logging
import Metrics
import RelayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The state shared by the connection thread and its callers.
final class RedisConnectionCore: @unchecked Sendable {
    // Everything mutable is in `lock`; the rest is immutable after init. The hiredis context is
    // local to `run()` and never leaves the connection thread.

    typealias Reply = Result<[RedisReply], RedisError>

    struct Pending {
        var commands: [[[UInt8]]]
        /// Called once with the replies or the failure, on the connection thread or the caller's.
        var complete: @Sendable (Reply) -> Void
        var enqueuedAt: UInt64
    }

    struct State {
        var queue: [Pending] = []
        var available = false
        var shuttingDown = false
        var exited = false
        /// The connection thread was started (it is started once, on first use or by `start()`).
        var started = false
        /// The socket of the live context, so `requestShutdown` can unblock a read. Cleared,
        /// with the lock held, before the context is freed, so a closed and reused descriptor is
        /// never shut down.
        var socket: Int32 = -1
        /// Set when Sentinel announced a new master: the reconnect backoff ends at once.
        var reconnectNow = false
        /// The `run_id` of the server the last connection reached.
        var serverRunID: String?
        /// The last connect reached another server than the one before (a failover, a restart).
        var serverChanged = false
        /// Who hears of it.
        var serverChangeHandlers: [@Sendable () -> Void] = []
        var nextWaiterID: UInt64 = 0
        var availabilityWaiters: [UInt64: Waiter] = [:]
        var exitWaiters: [CheckedContinuation<Void, Never>] = []

        /// Takes every waiter that is waiting (not one still registering).
        mutating func takeWaiting() -> [CheckedContinuation<Bool, Never>] {
            var taken: [CheckedContinuation<Bool, Never>] = []
            for (id, waiter) in availabilityWaiters {
                guard case .waiting(let continuation) = waiter else { continue }
                availabilityWaiters[id] = nil
                taken.append(continuation)
            }
            return taken
        }
    }

    /// A caller of `availability()`: registered before it suspends, so a cancellation that
    /// arrives first is remembered rather than lost.
    enum Waiter {
        case registering
        case waiting(CheckedContinuation<Bool, Never>)
        case cancelled
    }

    /// Commands taken in one pipeline write; bounds the latency one large burst adds to the next.
    static let maximumBatch = 1024

    let url: RedisURL
    let configuration: RedisConnection.Configuration
    let logger: Logger
    let onAvailabilityChange: (@Sendable (Bool) -> Void)?
    /// Where the master is, when Sentinel decides; nil connects to `url`'s endpoint.
    let sentinel: RedisSentinel?
    let lock = ConditionLock(State())
    let metrics = RedisMetrics()

    init(
        url: RedisURL, configuration: RedisConnection.Configuration, logger: Logger, sentinel: RedisSentinel?,
        onAvailabilityChange: (@Sendable (Bool) -> Void)?
    ) {
        self.url = url
        self.sentinel = sentinel
        self.configuration = configuration
        self.logger = logger
        self.onAvailabilityChange = onAvailabilityChange
    }

    var isAvailable: Bool { lock.withLock { $0.available } }

    /// Starts the connection thread unless it was started or shut down before.
    func start() {
        let starting = lock.withLock { state -> Bool in
            guard !state.started, !state.shuttingDown else { return false }
            state.started = true
            return true
        }
        guard starting else { return }
        // The thread holds the connection until `run` returns.
        let started = startThread(name: "relay-redis") { self.run() }
        precondition(started, "cannot start the Redis connection thread")
        sentinel?.watch { [weak self] in self?.dropConnection(reason: "Sentinel switched the master") }
    }

    /// Breaks the live connection (the thread then reconnects, asking Sentinel again). Commands in
    /// flight fail with ``RedisError/Kind/connectionLost``.
    func dropConnection(reason: String) {
        lock.withLock { state in
            state.reconnectNow = true
            guard state.socket >= 0 else { return }
            logger.notice("redis_connection_dropped", metadata: ["reason": "\(reason)"])
            _ = Glibc.shutdown(state.socket, Int32(SHUT_RDWR))
        }
        lock.broadcast()
    }

    // MARK: Callers

    func enqueue(_ commands: [[[UInt8]]], complete: @escaping @Sendable (Reply) -> Void) {
        let refusal: RedisError? = lock.withLock { state in
            if state.shuttingDown { return RedisError(.shutdown, "the connection was shut down") }
            guard state.available else { return RedisError(.unavailable, "not connected to Redis") }
            state.queue.append(Pending(commands: commands, complete: complete, enqueuedAt: monotonicNanoseconds()))
            return nil
        }
        if let refusal {
            if refusal.kind == .unavailable { metrics.unavailableErrors.increment() }
            complete(.failure(refusal))
        } else {
            lock.broadcast()
        }
    }

    /// Returns true once available; false on shutdown or cancellation.
    func availability() async -> Bool {
        let id = lock.withLock { state in
            state.nextWaiterID += 1
            state.availabilityWaiters[state.nextWaiterID] = .registering
            return state.nextWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate: Bool? = lock.withLock { state in
                    let entry = state.availabilityWaiters.removeValue(forKey: id)
                    if state.available { return true }
                    if state.shuttingDown { return false }
                    if case .cancelled? = entry { return false }
                    state.availabilityWaiters[id] = .waiting(continuation)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = lock.withLock { state -> CheckedContinuation<Bool, Never>? in
                switch state.availabilityWaiters[id] {
                case .waiting(let continuation):
                    state.availabilityWaiters[id] = nil
                    return continuation
                case .registering:
                    state.availabilityWaiters[id] = .cancelled
                    return nil
                case .cancelled, nil:
                    return nil
                }
            }
            waiter?.resume(returning: false)
        }
    }

    func exited() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = lock.withLock { state in
                if state.exited { return true }
                state.exitWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    func requestShutdown() {
        sentinel?.stop()
        let (queued, waiters) = lock.withLock { state -> ([Pending], [CheckedContinuation<Bool, Never>]) in
            guard !state.shuttingDown else { return ([], []) }
            state.shuttingDown = true
            // A connection never started has no thread to report its exit.
            if !state.started { state.exited = true }
            state.available = false
            // Unblocks a read or write in progress on the connection thread; it frees the context.
            if state.socket >= 0 { _ = Glibc.shutdown(state.socket, Int32(SHUT_RDWR)) }
            let queued = state.queue
            state.queue = []
            return (queued, state.takeWaiting())
        }
        lock.broadcast()
        let error = RedisError(.shutdown, "the connection was shut down")
        for pending in queued { pending.complete(.failure(error)) }
        for waiter in waiters { waiter.resume(returning: false) }
    }

    // MARK: The connection thread

    private func run() {
        blockSIGPIPEOnThisThread()

        var failedAttempts = 0
        var everConnected = false
        var lastWarning: UInt64?
        while !lock.withLock({ $0.shuttingDown }) {
            switch connect() {
            case .success(let context):
                guard publish(context) else {
                    redisFree(context)
                    break
                }
                logger.info("redis_connected", metadata: ["failed_attempts": "\(failedAttempts)"])
                let changed = lock.withLock { state -> [@Sendable () -> Void] in
                    defer { state.serverChanged = false }
                    return state.serverChanged ? state.serverChangeHandlers : []
                }
                for handler in changed { handler() }
                if everConnected { metrics.reconnects.increment() }
                everConnected = true
                failedAttempts = 0
                lastWarning = nil
                let (loss, unanswered) = serve(context)
                count(loss)
                // Unavailable (and reported so) before any caller hears of the failure: a caller
                // that retries at once is refused instead of queueing behind a dead connection.
                let (queued, shuttingDown) = lock.withLock { state in
                    state.socket = -1
                    state.available = false
                    let queued = state.queue
                    state.queue = []
                    return (queued, state.shuttingDown)
                }
                redisFree(context)
                if !shuttingDown {
                    logger.warning("redis_connection_lost", metadata: ["error": "\(loss.message)"])
                    onAvailabilityChange?(false)
                }
                for pending in unanswered + queued { pending.complete(.failure(loss)) }
            case .failure(let error):
                count(error.kind == .timeout ? error : RedisError(.connectionLost, error.message))
                failedAttempts += 1
                // A warning when an outage starts and once a minute while it lasts; every attempt
                // in between would repeat the same cause.
                let now = monotonicNanoseconds()
                if lastWarning.map({ now - $0 >= 60_000_000_000 }) ?? true {
                    lastWarning = now
                    logger.warning(
                        "redis_connect_failed; retrying with backoff",
                        metadata: ["error": "\(error.message)", "failed_attempts": "\(failedAttempts)"])
                } else {
                    logger.debug("redis_connect_failed", metadata: ["error": "\(error.message)", "failed_attempts": "\(failedAttempts)"])
                }
            }
            sleepBeforeReconnect(attempt: max(failedAttempts - 1, 0))
        }

        let (queued, waiters, exitWaiters) = lock.withLock { state in
            state.exited = true
            defer {
                state.queue = []
                state.exitWaiters = []
            }
            return (state.queue, state.takeWaiting(), state.exitWaiters)
        }
        let error = RedisError(.shutdown, "the connection was shut down")
        for pending in queued { pending.complete(.failure(error)) }
        for waiter in waiters { waiter.resume(returning: false) }
        for waiter in exitWaiters { waiter.resume() }
    }

    /// Marks the connection available, unless shutdown began meanwhile.
    private func publish(_ context: UnsafeMutablePointer<redisContext>) -> Bool {
        let waiters = lock.withLock { state -> [CheckedContinuation<Bool, Never>]? in
            guard !state.shuttingDown else { return nil }
            state.socket = context.pointee.fd
            state.available = true
            return state.takeWaiting()
        }
        guard let waiters else { return false }
        // Reported before waiters resume, as a loss is reported before callers fail.
        onAvailabilityChange?(true)
        for waiter in waiters { waiter.resume(returning: true) }
        return true
    }

    /// Counts a connection that broke or could not be made.
    private func count(_ loss: RedisError) {
        switch loss.kind {
        case .timeout: metrics.timeoutErrors.increment()
        case .connectionLost: metrics.connectionErrors.increment()
        default: break
        }
    }

    private func sleepBeforeReconnect(attempt: Int) {
        // At least 1 ms, so a zero configuration cannot spin.
        let initial = max(configuration.initialBackoff.nanoseconds, 1_000_000)
        let maximum = max(configuration.maximumBackoff.nanoseconds, initial)
        var ceiling = initial
        for _ in 0..<min(attempt, 64) where ceiling < maximum { ceiling = ceiling > maximum / 2 ? maximum : ceiling * 2 }
        // Equal jitter: half fixed, half random, so nodes that lost Redis together spread out.
        let delay = ceiling / 2 + UInt64.random(in: 0...max(ceiling / 2, 1))
        let deadline = monotonicNanoseconds() + delay
        lock.wait(until: { $0.shuttingDown || $0.reconnectNow }, deadline: deadline) { $0.reconnectNow = false }
    }

    /// Connects, sets the command timeout, authenticates and selects the database.
    private func connect() -> Result<UnsafeMutablePointer<redisContext>, RedisError> {
        let connectTimeout = timeval(configuration.connectTimeout)
        var endpoint = url.endpoint
        var master: RedisSentinelConfiguration.Address?
        if let sentinel {
            switch sentinel.resolveMaster() {
            case .success(let address):
                master = address
                endpoint = .tcp(host: address.host, port: address.port)
            case .failure(let error):
                return .failure(error)
            }
        }
        let context: UnsafeMutablePointer<redisContext>?
        switch endpoint {
        case .tcp(let host, let port): context = redisConnectWithTimeout(host, Int32(port), connectTimeout)
        case .unix(let path): context = redisConnectUnixWithTimeout(path, connectTimeout)
        }
        guard let context else { return .failure(RedisError(.connectionLost, "cannot allocate a hiredis context")) }
        guard context.pointee.err == 0 else {
            let error = RedisError(.connectionLost, Self.errorText(context))
            redisFree(context)
            return .failure(error)
        }
        if case .tcp = url.endpoint { _ = redisEnableKeepAlive(context) }
        guard redisSetTimeout(context, timeval(configuration.commandTimeout)) == REDIS_OK else {
            let error = RedisError(.connectionLost, "cannot set the command timeout: \(Self.errorText(context))")
            redisFree(context)
            return .failure(error)
        }

        var setup: [[[UInt8]]] = []
        if let password = url.password {
            if let username = url.username {
                setup.append(["AUTH", username, password].map { Array($0.utf8) })
            } else {
                setup.append(["AUTH", password].map { Array($0.utf8) })
            }
        }
        if url.database != 0 { setup.append(["SELECT", String(url.database)].map { Array($0.utf8) }) }
        if !setup.isEmpty {
            let result = roundTrip(context, setup)
            switch result {
            case .success(let replies):
                for (command, reply) in zip(setup, replies) {
                    if case .error(let message) = reply {
                        redisFree(context)
                        // The command name only: AUTH's arguments are secrets.
                        let name = String(decoding: command[0], as: UTF8.self)
                        return .failure(RedisError(.server, "\(name) refused: \(message)"))
                    }
                }
            case .failure(let error):
                redisFree(context)
                return .failure(error)
            }
        }
        if let sentinel, let master {
            // Sentinel's answer may be stale during a failover: only a master will do.
            switch roundTrip(context, [[Array("ROLE".utf8)]]) {
            case .success(let replies):
                guard case .array(let role)? = replies.first, role.first?.text == "master" else {
                    redisFree(context)
                    return .failure(RedisError(.connectionLost, "\(master) is not a master yet"))
                }
            case .failure(let error):
                redisFree(context)
                return .failure(error)
            }
            sentinel.connected(to: master)
        }
        // Which server this is: another one than last time (a promoted replica, a restart) may
        // hold older data than what was read before, which callers must know.
        if case .success(let replies) = roundTrip(context, [["INFO", "server"].map { Array($0.utf8) }]),
            let info = replies.first?.text,
            let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("run_id:") })
        {
            let runID = String(line.dropFirst("run_id:".count))
            lock.withLock { state in
                if let previous = state.serverRunID, previous != runID { state.serverChanged = true }
                state.serverRunID = runID
            }
        }
        return .success(context)
    }

    /// Calls `handler` (on the connection thread) each time a connection reaches another server
    /// than the previous one did.
    func onServerChange(_ handler: @escaping @Sendable () -> Void) {
        lock.withLock { $0.serverChangeHandlers.append(handler) }
    }

    private enum Work {
        case batch([Pending])
        case idle
        case shutdown
    }

    /// Serves commands until the connection fails or shutdown begins; returns why it stopped and
    /// the commands taken that got no reply (the caller fails them).
    private func serve(_ context: UnsafeMutablePointer<redisContext>) -> (RedisError, [Pending]) {
        let healthCheck = max(configuration.healthCheckInterval.nanoseconds, 1_000_000)
        while true {
            let work = lock.wait(
                until: { !$0.queue.isEmpty || $0.shuttingDown },
                deadline: monotonicNanoseconds() + healthCheck
            ) { state -> Work in
                if state.shuttingDown { return .shutdown }
                if state.queue.isEmpty { return .idle }
                if state.queue.count <= Self.maximumBatch {
                    defer { state.queue.removeAll(keepingCapacity: true) }
                    return .batch(state.queue)
                }
                defer { state.queue.removeFirst(Self.maximumBatch) }
                return .batch(Array(state.queue.prefix(Self.maximumBatch)))
            }
            switch work {
            case .shutdown:
                return (RedisError(.shutdown, "the connection was shut down"), [])
            case .idle:
                if case .failure(let error) = roundTrip(context, [[Array("PING".utf8)]]) { return (error, []) }
            case .batch(let batch):
                if let failure = serve(batch, on: context) { return failure }
            }
        }
    }

    /// Writes every command of `batch`, then reads and hands out the replies in order. On a
    /// failure, returns it with the commands that got no reply.
    private func serve(_ batch: [Pending], on context: UnsafeMutablePointer<redisContext>) -> (RedisError, [Pending])? {
        for pending in batch {
            for command in pending.commands where !Self.append(command, to: context) {
                return (failure(of: context), batch)
            }
        }
        var demoted = false
        for (position, pending) in batch.enumerated() {
            var replies: [RedisReply] = []
            replies.reserveCapacity(pending.commands.count)
            for _ in pending.commands {
                guard let reply = Self.readReply(context) else {
                    return (failure(of: context), Array(batch[position...]))
                }
                metrics.commandDuration.recordNanoseconds(Int64(clamping: monotonicNanoseconds() &- pending.enqueuedAt))
                if case .error(let message) = reply {
                    metrics.serverErrors.increment()
                    // The node was demoted under us (a failover this connection missed).
                    if message.hasPrefix("READONLY") { demoted = true }
                }
                replies.append(reply)
            }
            pending.complete(.success(replies))
        }
        if demoted { return (RedisError(.connectionLost, "the server became a replica; reconnecting to the master"), []) }
        return nil
    }

    /// Sends commands and reads their replies (connection setup and health checks).
    private func roundTrip(_ context: UnsafeMutablePointer<redisContext>, _ commands: [[[UInt8]]]) -> Reply {
        for command in commands where !Self.append(command, to: context) { return .failure(failure(of: context)) }
        var replies: [RedisReply] = []
        for _ in commands {
            guard let reply = Self.readReply(context) else { return .failure(failure(of: context)) }
            replies.append(reply)
        }
        return .success(replies)
    }

    /// Why `context` failed.
    private func failure(of context: UnsafeMutablePointer<redisContext>) -> RedisError {
        let code = errno
        let text = Self.errorText(context)
        if lock.withLock({ $0.shuttingDown }) { return RedisError(.shutdown, "the connection was shut down") }
        // A blocking hiredis context reports SO_RCVTIMEO/SO_SNDTIMEO expiring as an I/O error
        // with EAGAIN.
        if context.pointee.err == REDIS_ERR_IO && (code == EAGAIN || code == EWOULDBLOCK) {
            return RedisError(.timeout, "no reply within \(configuration.commandTimeout)")
        }
        return RedisError(.connectionLost, text)
    }

    static func append(_ command: [[UInt8]], to context: UnsafeMutablePointer<redisContext>) -> Bool {
        // One buffer for all arguments (plus a byte so it is never empty); hiredis copies it into
        // its output buffer before returning.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(command.reduce(1) { $0 + $1.count })
        var offsets: [Int] = []
        var lengths: [Int] = []
        offsets.reserveCapacity(command.count)
        lengths.reserveCapacity(command.count)
        for argument in command {
            offsets.append(bytes.count)
            lengths.append(argument.count)
            bytes.append(contentsOf: argument)
        }
        bytes.append(0)
        return bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { base in
                var arguments: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
                return arguments.withUnsafeMutableBufferPointer { argv in
                    lengths.withUnsafeBufferPointer { argvlen in
                        redisAppendCommandArgv(context, Int32(command.count), argv.baseAddress, argvlen.baseAddress) == REDIS_OK
                    }
                }
            }
        }
    }

    static func readReply(_ context: UnsafeMutablePointer<redisContext>) -> RedisReply? {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { return nil }
        defer { freeReplyObject(raw) }
        return RedisReply(raw.assumingMemoryBound(to: redisReply.self))
    }

    static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { bytes in
            let text = bytes.prefix { $0 != 0 }
            return text.isEmpty ? "connection error \(context.pointee.err)" : String(decoding: text, as: UTF8.self)
        }
    }
}

/// hiredis writes with write(2): a peer that closed would raise SIGPIPE and kill the process.
/// Blocked on a thread that runs hiredis, the write returns EPIPE instead.
func blockSIGPIPEOnThisThread() {
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &signals, nil)
}

extension timeval {
    init(_ duration: Duration) {
        let nanoseconds = duration.nanoseconds
        self.init(tv_sec: Int(nanoseconds / 1_000_000_000), tv_usec: Int(nanoseconds % 1_000_000_000 / 1000))
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to 0…10⁹ s.
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(min(seconds, 1_000_000_000)) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }
}

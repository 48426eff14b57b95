// Finding the Redis master through Sentinel, and hearing when Sentinel moves it.

import CHiredis
import Logging
import Metrics
import RelayCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The master's address as Redis Sentinel knows it.
///
/// ``resolveMaster()`` asks the Sentinels in turn (`SENTINEL get-master-addr-by-name`), starting
/// with the last one that answered; the connection calls it before every connect, on its own
/// thread, so a connection lost in a failover reconnects to whichever node Sentinel promoted. The
/// connection then checks with `ROLE` that the node really is a master (a demoted master that
/// restarts is a replica until Sentinel says otherwise).
///
/// ``watch(onSwitch:)`` also subscribes to `+switch-master` on one Sentinel at a time, so a
/// failover that leaves the old master reachable (a manual `SENTINEL FAILOVER`, a network split)
/// moves the connection at once instead of at its next error.
///
/// Metrics: `relay_redis_master_changes_total` (the master's address changed between two
/// connects: a failover this node followed).
final class RedisSentinel: Sendable {
    let configuration: RedisSentinelConfiguration
    private let connectTimeout: Duration
    private let logger: Logger
    private let masterChanges = Counter(label: "relay_redis_master_changes_total")

    private struct State {
        /// The Sentinel to ask first: the last one that answered.
        var preferred = 0
        /// The master the connection last reached.
        var master: RedisSentinelConfiguration.Address?
        /// Master changes followed.
        var changes = 0
        /// The master a `+switch-master` announcement named: tried first at the next connect,
        /// before any Sentinel is asked (the one asked may not have switched yet).
        var announced: RedisSentinelConfiguration.Address?
        /// Who hears a switch (each connection sharing this Sentinel view).
        var handlers: [@Sendable () -> Void] = []
        var watching = false
        var stopped = false
        /// The watcher's socket, so `stop` can unblock its read.
        var watchSocket: Int32 = -1
    }

    private let state = ConditionLock(State())

    init(configuration: RedisSentinelConfiguration, connectTimeout: Duration, logger: Logger) {
        self.configuration = configuration
        self.connectTimeout = connectTimeout
        self.logger = logger
    }

    /// The master the connection last reached, `host:port`.
    var currentMaster: String? { state.withLock { $0.master?.description } }

    /// Master changes followed since start.
    var masterChangeCount: Int { state.withLock { $0.changes } }

    /// Asks the Sentinels where the master is; blocking, for the connection's thread.
    func resolveMaster() -> Result<RedisSentinelConfiguration.Address, RedisError> {
        // A fresh announcement is the answer; if it is already stale, `ROLE` says so and the
        // next attempt asks the Sentinels.
        if let announced = state.withLock({ s -> RedisSentinelConfiguration.Address? in
            defer { s.announced = nil }
            return s.announced
        }) {
            return .success(announced)
        }
        let sentinels = configuration.sentinels
        let first = state.withLock { $0.preferred }
        var lastError = "no Sentinel configured"
        for offset in 0..<sentinels.count {
            let index = (first + offset) % sentinels.count
            let sentinel = sentinels[index]
            switch ask(sentinel) {
            case .success(let master):
                state.withLock { $0.preferred = index }
                return .success(master)
            case .failure(let error):
                lastError = "\(sentinel): \(error.message)"
            }
        }
        return .failure(RedisError(.connectionLost, "no Sentinel named the master '\(configuration.masterName)' (last: \(lastError))"))
    }

    /// Records that the connection reached `master`; a different address than last time is a
    /// failover followed.
    func connected(to master: RedisSentinelConfiguration.Address) {
        let (changed, old) = state.withLock { s -> (Bool, RedisSentinelConfiguration.Address?) in
            guard s.master != master else { return (false, nil) }
            let old = s.master
            s.master = master
            if old != nil { s.changes += 1 }
            return (true, old)
        }
        guard changed else { return }
        if let old {
            masterChanges.increment()
            logger.notice("redis_master_changed", metadata: ["from": "\(old)", "to": "\(master)", "master_name": "\(configuration.masterName)"])
        } else {
            logger.info("redis_master_found", metadata: ["master": "\(master)", "master_name": "\(configuration.masterName)"])
        }
    }

    private func ask(_ sentinel: RedisSentinelConfiguration.Address) -> Result<RedisSentinelConfiguration.Address, RedisError> {
        guard let context = connect(sentinel) else {
            return .failure(RedisError(.connectionLost, "cannot connect"))
        }
        defer { redisFree(context) }
        guard context.pointee.err == 0 else { return .failure(RedisError(.connectionLost, RedisConnectionCore.errorText(context))) }
        _ = redisSetTimeout(context, timeval(connectTimeout))
        let command = ["SENTINEL", "get-master-addr-by-name", configuration.masterName].map { Array($0.utf8) }
        guard RedisConnectionCore.append(command, to: context), let reply = RedisConnectionCore.readReply(context) else {
            return .failure(RedisError(.connectionLost, RedisConnectionCore.errorText(context)))
        }
        switch reply {
        case .array(let parts) where parts.count == 2:
            guard let host = parts[0].text, let portText = parts[1].text, let port = Int(portText) else { break }
            return .success(RedisSentinelConfiguration.Address(host: host, port: port))
        case .null:
            return .failure(RedisError(.server, "does not monitor '\(configuration.masterName)'"))
        case .error(let message):
            return .failure(RedisError(.server, message))
        default:
            break
        }
        return .failure(RedisError(.unexpectedReply, "unexpected reply \(reply)"))
    }

    private func connect(_ address: RedisSentinelConfiguration.Address) -> UnsafeMutablePointer<redisContext>? {
        let context = redisConnectWithTimeout(address.host, Int32(address.port), timeval(connectTimeout))
        if let context, context.pointee.err == 0 { _ = redisEnableKeepAlive(context) }
        return context
    }

    // MARK: Switch announcements

    /// Calls `onSwitch` for every `+switch-master` of this master; the first call starts the
    /// thread that listens, moving to the next Sentinel when one goes away.
    func watch(onSwitch: @escaping @Sendable () -> Void) {
        let start = state.withLock { s -> Bool in
            s.handlers.append(onSwitch)
            guard !s.watching, !s.stopped else { return false }
            s.watching = true
            return true
        }
        guard start else { return }
        if !startThread(name: "relay-sentinel", { self.listen() }) {
            logger.error("redis_sentinel_watcher_not_started; failovers are followed at the next connection error")
        }
    }

    /// Stops the watcher (its blocked read is interrupted).
    func stop() {
        state.withLock { s in
            s.stopped = true
            if s.watchSocket >= 0 { _ = Glibc.shutdown(s.watchSocket, Int32(SHUT_RDWR)) }
        }
        state.broadcast()
    }

    private func listen() {
        blockSIGPIPEOnThisThread()
        var index = 0
        while !state.withLock({ $0.stopped }) {
            let sentinel = configuration.sentinels[index % configuration.sentinels.count]
            index += 1
            if let context = connect(sentinel) {
                if context.pointee.err == 0 { subscribe(context) }
                state.withLock { $0.watchSocket = -1 }
                redisFree(context)
            }
            // Wait a second before the next Sentinel, unless stopped meanwhile.
            state.wait(until: { $0.stopped }, deadline: monotonicNanoseconds() + 1_000_000_000) { _ in }
        }
    }

    /// Reads announcements until the connection fails or the watcher stops.
    private func subscribe(_ context: UnsafeMutablePointer<redisContext>) {
        let registered = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.watchSocket = context.pointee.fd
            return true
        }
        guard registered else { return }
        guard RedisConnectionCore.append(["SUBSCRIBE", "+switch-master"].map { Array($0.utf8) }, to: context) else { return }
        let prefix = configuration.masterName + " "
        while let reply = RedisConnectionCore.readReply(context) {
            guard case .array(let parts) = reply, parts.count == 3, parts[0].text == "message",
                let payload = parts[2].text, payload.hasPrefix(prefix)
            else { continue }
            logger.notice("redis_sentinel_switch_master", metadata: ["announcement": "\(payload)"])
            // `<name> <old ip> <old port> <new ip> <new port>`
            let fields = payload.split(separator: " ")
            let handlers = state.withLock { s -> [@Sendable () -> Void] in
                if fields.count == 5, let port = Int(fields[4]) {
                    s.announced = RedisSentinelConfiguration.Address(host: String(fields[3]), port: port)
                }
                return s.handlers
            }
            for handler in handlers { handler() }
        }
    }
}

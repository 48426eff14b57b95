// Pairing rate: complete pairings per second, with the relay's state in Redis as in production.

import Foundation
import RelayTestClient
import RelayLocalCluster

/// Configuration of the pairing-rate mode.
package struct PairingRateConfiguration: Sendable {
    package var pairings = 5000
    package var concurrency = 64
    /// The Redis a local relay uses; `nil` starts a redis-server on a free loopback port.
    package var redisURL: String?
    package var targetRate = 500
    package var common = ModeConfiguration()

    package init() {}

    /// `RELAY_LOAD_PAIRINGS`, `RELAY_LOAD_SETUP_CONCURRENCY`, `RELAY_LOAD_REDIS_URL`,
    /// `RELAY_LOAD_TARGET_RATE` and the common variables.
    package init(environment: HarnessEnvironment) {
        pairings = environment.positiveInt("RELAY_LOAD_PAIRINGS", default: pairings)
        concurrency = environment.positiveInt("RELAY_LOAD_SETUP_CONCURRENCY", default: concurrency)
        redisURL = environment.string("RELAY_LOAD_REDIS_URL")
        targetRate = environment.positiveInt("RELAY_LOAD_TARGET_RATE", default: targetRate)
        common = ModeConfiguration(environment: environment, mode: "pairing-rate")
    }
}

/// The pairing-rate mode. A complete pairing is §9.1's setup: `/pair/start`, desktop connect and
/// auth, `/pair/join` approved over the desktop's socket, phone connect and auth. Samples are
/// each pairing's duration.
package enum PairingRate {
    package static func relayOverrides(concurrency: Int, redisURL: String) -> [String: String] {
        [
            "REDIS_URL": redisURL, "MAX_PAIR_REQUESTS_PER_MINUTE": "10000000",
            "MAX_PENDING_JOIN_WAITERS": "\(max(64, concurrency * 2))", "MAX_ACTIVE_WEBSOCKET_CONNECTIONS": "100000",
        ]
    }

    package static func run(_ configuration: PairingRateConfiguration, relay: RelayUnderTest, redisPID: Int32?) async -> LoadResult {
        let recorder = LatencyRecorder()
        let accounting = RunAccounting(relayPIDs: relay.pids)
        let redisAtStart = redisPID.flatMap { ProcessUsage.of(pid: $0) }
        let progress = ProgressReporter(label: "pairing-rate", enabled: configuration.common.progress) {
            "pairings \(recorder.count)/\(configuration.pairings)"
        }
        let started = ContinuousClock.now
        let failures = await forEachConcurrently(count: configuration.pairings, width: configuration.concurrency) { index in
            let began = ContinuousClock.now
            let session = try await RelayPairing.pairConnected(
                desktop: RelayDesktop(baseURL: relay.baseURL), phone: RelayPhone(baseURL: relay.baseURL, origin: configuration.common.origin),
                deviceName: "Load Harness iPhone", idleTimeoutSeconds: 1800, settleTimeout: .zero, drainIdle: .zero)
            recorder.record(ContinuousClock.now - began)
            await session.phone.disconnect()
            await session.desktop.disconnect()
        }
        let elapsed = ContinuousClock.now - started
        progress.stop()
        let usage = accounting.snapshot()
        let redisUsage = redisPID.flatMap { ProcessUsage.of(pid: $0) }
        let counters = (try? await relay.counters()) ?? RelayCounters()
        var errors = failures.prefix(20).map { "pairing \($0.0): \($0.1)" }
        if failures.count > 20 { errors.append("… and \(failures.count - 20) more pairing failures") }
        let rate = Double(recorder.count) / max(elapsed.seconds, 0.001)
        var extra = relay.relayMembers
        extra += [
            ("pairings", .int(configuration.pairings)),
            ("completed_pairings", .int(recorder.count)),
            ("concurrency", .int(configuration.concurrency)),
            ("pairing_seconds", .number(elapsed.seconds)),
            ("pairings_per_second", .number(rate, places: 1)),
            ("target_pairings_per_second", .int(configuration.targetRate)),
            ("passes_rate_target", .bool(errors.isEmpty && rate >= Double(configuration.targetRate))),
            ("redis", .string(redisPID == nil ? "external" : "local")),
            ("redis_cpu_seconds", .number(redisUsage.map { $0.cpuSeconds - (redisAtStart?.cpuSeconds ?? 0) })),
        ]
        return LoadResult(
            mode: "pairing-rate", baseURL: relay.baseURL, origin: configuration.common.origin, sessions: configuration.pairings,
            messagesPerSession: 0, latency: recorder.summary, p95BudgetMilliseconds: 750, counters: counters, errors: errors,
            usage: usage, extra: extra, timeline: recorder.timeline)
    }
}

/// A redis-server of the harness's own on a free loopback port, for the pairing-rate mode.
package final class LocalRedis: Sendable {
    private let server: LocalDependencyServer

    private init(server: LocalDependencyServer) { self.server = server }

    /// Starts redis-server (found on PATH or in the usual places) without persistence.
    package static func start() async throws -> LocalRedis {
        let server = try LocalDependencyServer(.redis(appendOnly: false), executable: try LocalDependencyServer.findExecutable("redis-server"))
        try await server.start()
        return LocalRedis(server: server)
    }

    package var url: String { server.url }
    package var pid: Int32? { server.process?.pid }

    /// Stops it.
    package func stop() { server.terminateIfRunning() }
}

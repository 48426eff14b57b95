// Failover drills rehearsed on one machine: a local cluster (three relay nodes, Redis with an
// append-only file, NATS) carrying acknowledged client traffic, one disruption, and a record of
// what clients and the relay's own endpoints showed. Runbooks/failover.md names each drill.

import Foundation
import RelayLoadKit

/// A disruption the runbooks describe and a drill rehearses.
package enum Drill: String, CaseIterable, Sendable {
    /// A node vanishes without draining (`kill -9`), then comes back.
    case nodeLoss = "node-loss"
    /// Redis stops (SIGTERM, so the append-only file is complete) and starts again.
    case redisRestart = "redis-restart"
    /// NATS stops and starts again.
    case natsRestart = "nats-restart"
    /// Every node is drained (SIGTERM) and replaced in turn, as a Deployment rollout does.
    case rollingRestart = "rolling-restart"
    /// `NATS_HMAC_SECRET` rotated in three rolling restarts (Runbooks/secret-rotation.md).
    case secretRotation = "secret-rotation"
    /// The Redis master under Sentinel is killed (`kill -9`) while pairings and token rotations
    /// stream in; run with `REDIS_MIN_REPLICAS_ACK=1` and with `0`, counting what was acknowledged
    /// and lost (`RedisFailoverDrill`).
    case redisFailover = "redis-failover"
}

/// How a drill runs. Every figure has an environment variable (`init(environment:)`).
package struct DrillConfiguration: Sendable {
    /// Relay nodes in the local cluster.
    package var nodes = 3
    /// Paired sessions carrying traffic; every other group of `nodes` sessions has its desktop and
    /// phone on the same node, the rest on neighbouring nodes.
    package var sessions = 12
    /// Traffic before the disruption.
    package var warmup: Duration = .seconds(4)
    /// How long a dependency stays down, or a killed node stays away.
    package var outage: Duration = .seconds(6)
    /// How long recovery may take before the drill counts it failed.
    package var recoveryTimeout: Duration = .seconds(40)
    /// The nodes' `DRAIN_PERIOD_MS`.
    package var drainPeriodMilliseconds = 2000
    /// The phones' `Origin` (the nodes' `ALLOWED_ORIGINS`).
    package var origin = "http://localhost:4173"
    /// Where `drill-<name>.json` is written; nil writes nothing.
    package var outputDirectory: String? = "output/remote-control"
    /// Print each observation on standard output as it is made.
    package var echo = true
    /// The redis-server and nats-server binaries; nil looks them up on PATH.
    package var redisExecutable: String?
    package var natsExecutable: String?

    // The redis-failover drill only.

    /// The Sentinels' `down-after-milliseconds`.
    package var sentinelDownAfterMilliseconds = 1500
    /// How long the replicas are cut off from the master before it is killed (SIGSTOP of the
    /// replicas and `CLIENT KILL TYPE replica` on the master): the writes of that window reach
    /// only the master. 0 kills the master with its replicas in sync.
    package var replicaHoldMilliseconds = 1000
    /// The `REDIS_MIN_REPLICAS_ACK` settings to run, one whole run each, in this order.
    package var minReplicasAckSettings = [1, 0]
    /// Concurrent loops pairing new sessions (pair/start, desktop auth, join, approve).
    package var pairingStreams = 2
    /// Phones that reconnect in a loop, each auth rotating their token.
    package var rotatingPhones = 4
    /// Traffic kept running after every node followed the new master.
    package var afterFailover: Duration = .seconds(3)

    package init() {}

    /// `RELAY_DRILL_NODES`, `RELAY_DRILL_SESSIONS`, `RELAY_DRILL_WARMUP_S`, `RELAY_DRILL_OUTAGE_S`,
    /// `RELAY_DRILL_RECOVERY_TIMEOUT_S`, `RELAY_DRILL_DRAIN_PERIOD_MS`, `RELAY_DRILL_OUTPUT_DIR`,
    /// `RELAY_LOAD_ORIGIN`; for redis-failover `RELAY_DRILL_SENTINEL_DOWN_AFTER_MS`,
    /// `RELAY_DRILL_REPLICA_HOLD_MS`, `RELAY_DRILL_MIN_REPLICAS_ACK`, `RELAY_DRILL_PAIRING_STREAMS`,
    /// `RELAY_DRILL_ROTATING_PHONES`, `RELAY_DRILL_AFTER_FAILOVER_S`.
    ///
    /// - Throws: `HarnessConfigurationError` for a malformed `RELAY_DRILL_REPLICA_HOLD_MS` or
    ///   `RELAY_DRILL_MIN_REPLICAS_ACK` (0 is meaningful there, so a typo must not fall back).
    package init(environment: HarnessEnvironment) throws {
        nodes = max(2, environment.positiveInt("RELAY_DRILL_NODES", default: nodes))
        sessions = max(nodes, environment.positiveInt("RELAY_DRILL_SESSIONS", default: sessions))
        warmup = .seconds(environment.positiveInt("RELAY_DRILL_WARMUP_S", default: 4))
        outage = .seconds(environment.positiveInt("RELAY_DRILL_OUTAGE_S", default: 6))
        recoveryTimeout = .seconds(environment.positiveInt("RELAY_DRILL_RECOVERY_TIMEOUT_S", default: 40))
        drainPeriodMilliseconds = environment.positiveInt("RELAY_DRILL_DRAIN_PERIOD_MS", default: drainPeriodMilliseconds)
        outputDirectory = environment.string("RELAY_DRILL_OUTPUT_DIR") ?? outputDirectory
        origin = environment.string("RELAY_LOAD_ORIGIN") ?? origin
        sentinelDownAfterMilliseconds = environment.positiveInt("RELAY_DRILL_SENTINEL_DOWN_AFTER_MS", default: sentinelDownAfterMilliseconds)
        replicaHoldMilliseconds = try environment.threshold("RELAY_DRILL_REPLICA_HOLD_MS", default: replicaHoldMilliseconds)
        if let settings = environment.string("RELAY_DRILL_MIN_REPLICAS_ACK") {
            let parsed = settings.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parsed.isEmpty, parsed.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                throw HarnessConfigurationError("RELAY_DRILL_MIN_REPLICAS_ACK must be a comma-separated list of integers ≥ 0, got '\(settings)'")
            }
            minReplicasAckSettings = parsed.compactMap { $0 }
        }
        pairingStreams = environment.positiveInt("RELAY_DRILL_PAIRING_STREAMS", default: pairingStreams)
        rotatingPhones = environment.positiveInt("RELAY_DRILL_ROTATING_PHONES", default: rotatingPhones)
        afterFailover = .seconds(environment.positiveInt("RELAY_DRILL_AFTER_FAILOVER_S", default: 3))
    }
}

/// What a drill observed, in order, and the checks it made.
package final class DrillReport: Sendable {
    /// One expectation of the runbook, and whether the drill saw it hold.
    package struct Check: Sendable {
        package let name: String
        package let passed: Bool
        package let detail: String
    }

    package let drill: Drill
    private let started: ContinuousClock.Instant
    private let echo: Bool
    private let notes = Locked<[(seconds: Double, text: String)]>([])
    private let recordedChecks = Locked<[Check]>([])
    private let recordedFacts = Locked<[(String, ArtifactJSON)]>([])
    private let summaryLines = Locked<[String]>([])

    init(drill: Drill, echo: Bool) {
        self.drill = drill
        self.started = .now
        self.echo = echo
    }

    /// Observations with their time since the drill started, in seconds.
    package var observations: [(seconds: Double, text: String)] { notes.withLock { $0 } }
    /// The checks, in the order they were made.
    package var checks: [Check] { recordedChecks.withLock { $0 } }
    /// The closing summary, if the drill printed one.
    package var summary: [String] { summaryLines.withLock { $0 } }
    /// True when every check passed.
    package var passed: Bool { checks.allSatisfy(\.passed) && !checks.isEmpty }

    /// Records (and echoes) something the drill saw.
    func note(_ text: String) {
        let seconds = (ContinuousClock.now - started).seconds
        notes.withLock { $0.append((seconds, text)) }
        if echo { Self.write(String(format: "[%6.2f s] ", seconds) + text) }
    }

    /// Records (and echoes) an expectation and whether it held.
    func check(_ name: String, _ passed: Bool, _ detail: String) {
        recordedChecks.withLock { $0.append(Check(name: name, passed: passed, detail: detail)) }
        if echo { Self.write("check \(passed ? "PASS" : "FAIL"): \(name): \(detail)") }
    }

    /// Records (and echoes) the closing summary, a few aligned lines.
    func summarize(_ lines: [String]) {
        summaryLines.withLock { $0.append(contentsOf: lines) }
        if echo { lines.forEach(Self.write) }
    }

    /// Records a figure for the artifact.
    func fact(_ key: String, _ value: ArtifactJSON) { recordedFacts.withLock { $0.append((key, value)) } }

    /// The artifact: status, observations, checks and figures.
    package var json: ArtifactJSON {
        .object(
            [
                ("drill", .string(drill.rawValue)),
                ("status", .string(passed ? "ok" : "failed")),
                (
                    "observations",
                    .array(observations.map { .object([("second", .number($0.seconds, places: 2)), ("event", .string($0.text))]) })
                ),
                ("checks", .array(checks.map { .object([("check", .string($0.name)), ("passed", .bool($0.passed)), ("detail", .string($0.detail))]) })),
            ] + (summary.isEmpty ? [] : [("summary", .array(summary.map { .string($0) }))]) + recordedFacts.withLock { $0 })
    }

    private static func write(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
}

extension Duration {
    /// "1.23 s".
    var secondsText: String { String(format: "%.2f s", seconds) }
}

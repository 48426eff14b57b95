// relay-load: the load, soak and gate harness (PROTOCOL §9) and the benchmark modes.
// Configuration comes from the environment, as the reference scripts pass it; see LoadTests/README.md.

import ArgumentParser
import Foundation
import RelayLoadKit

@main
struct RelayLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-load",
        abstract: "Load, soak and gate harness for the relay (PROTOCOL §9). Loopback and RELAY_LOAD_BASE_URL only.",
        subcommands: [
            Load.self, Gate.self, Soak.self, ThroughputMode.self, ScaleMode.self, FanoutMode.self, PairingRateMode.self,
            SlowConsumersMode.self, CrossNodeMode.self, ClusterSoakMode.self, FloorMode.self, ResumeMode.self,
            EndToEndMode.self,
        ],
        defaultSubcommand: Load.self)
}

/// Exit codes shared by every command: 0 pass, 1 a failed run or gate, 2 bad configuration.
enum Outcome {
    static func fail() -> ExitCode { ExitCode(1) }
    static func misconfigured(_ error: any Error) -> ExitCode {
        harnessLog("relay-load: \(error)")
        return ExitCode(2)
    }
}

var processEnvironment: HarnessEnvironment { HarnessEnvironment(ProcessInfo.processInfo.environment) }

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "§9.1: parallel sessions (pair, then timed command round trips); writes RELAY_LOAD_RESULTS_PATH.")

    func run() async throws {
        let configuration = SessionLoadConfiguration(environment: processEnvironment)
        let relay: RelayUnderTest
        do {
            relay = try await RelayUnderTest.resolve(baseURL: configuration.baseURL, origin: configuration.origin)
        } catch {
            harnessLog("relay-load: could not start a local relay: \(error)")
            throw ExitCode(1)
        }
        harnessLog(
            "relay-load load: \(configuration.sessions) sessions x \(configuration.messagesPerSession) messages against \(relay.baseURL)"
                + (relay.local != nil ? " (local relay)" : ""))
        let result = await SessionLoad.run(configuration, relay: relay)
        await relay.shutdown()
        try finish(result, path: configuration.resultsPath, assertionFailures: SessionLoad.assertionFailures(result))
    }
}

/// Writes the artifact (when a path is set), prints the headline, and exits 1 on any failure.
func finish(_ result: LoadResult, path: String?, assertionFailures: [String]) throws {
    if let path {
        do {
            try result.json.write(to: path)
            harnessLog("artifact: \(path)")
        } catch {
            harnessLog("relay-load: could not write \(path): \(error)")
            throw ExitCode(1)
        }
    }
    let summary = result.latency
    print(
        "\(result.mode): status=\(result.status) samples=\(summary.count) p50=\(summary.p50)us p95=\(summary.p95)us"
            + " p99=\(summary.p99)us p99.9=\(summary.p999)us max=\(summary.max)us errors=\(result.errors.count)"
            + (result.usage.map { usage in
                " relay_cpu_s=\(usage.relayCPUSeconds.map { String(format: "%.2f", $0) } ?? "n/a")"
                    + " harness_cpu_s=\(usage.harnessCPUSeconds.map { String(format: "%.2f", $0) } ?? "n/a")"
                    + " wall_s=\(String(format: "%.2f", usage.wallSeconds)) cores=\(usage.machineCores)"
            } ?? ""))
    for (key, value) in result.extra where value != .null {
        if case .object = value { continue }
        if case .array = value { continue }
        print("  \(key)=\(value.pretty.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
    guard assertionFailures.isEmpty else {
        for failure in assertionFailures { print("FAILED: \(failure)") }
        throw ExitCode(1)
    }
    print("PASS")
}

struct Gate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "§9.2: checks RELAY_GATE_RESULTS_PATH against RELAY_GATE_* thresholds.")

    func run() async throws {
        let environment = processEnvironment
        let thresholds: GateThresholds
        do {
            thresholds = try GateThresholds(environment: environment)
        } catch {
            throw Outcome.misconfigured(error)
        }
        let path = environment.string("RELAY_GATE_RESULTS_PATH") ?? "output/remote-control/relay-load-result.json"
        let decision = RelayLoadKit.Gate.evaluate(path: path, thresholds: thresholds)
        print(decision.report)
        if !decision.passed { throw Outcome.fail() }
    }
}

struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "§9.3: RELAY_SOAK_LOOPS load runs, one summary (RELAY_SOAK_SUMMARY_PATH) with an HTML report beside it.")

    func run() async throws {
        let environment = processEnvironment
        let loops: Int
        let thresholds: SoakThresholds
        do {
            thresholds = try SoakThresholds(environment: environment)
            let raw = environment.string("RELAY_SOAK_LOOPS") ?? "5"
            guard let parsed = Int(raw), parsed > 0 else { throw HarnessConfigurationError("RELAY_SOAK_LOOPS must be a positive integer, got '\(raw)'") }
            loops = parsed
        } catch {
            throw Outcome.misconfigured(error)
        }
        let directory = environment.string("RELAY_SOAK_RESULTS_DIR") ?? "output/remote-control/soak-runs"
        let summaryPath = environment.string("RELAY_SOAK_SUMMARY_PATH") ?? "output/remote-control/relay-soak-summary.json"
        let summary = await SoakRunner.run(loops: loops, directory: directory, thresholds: thresholds)
        let reportPath = SoakRunner.reportPath(forSummary: summaryPath)
        try finishSoak(
            "soak", summary: summary.json(reportPath: reportPath), report: SoakRunner.report(summary), path: summaryPath,
            headline: "soak: loops=\(loops) ok_loops=\(summary.okLoops) failing_loops=\(summary.failingLoops) total_samples=\(summary.totalSamples)"
                + " max_p95=\(summary.maxP95Micros)us total_errors=\(summary.totalErrors)",
            failures: summary.gateFailures)
    }
}

/// Writes a soak summary and its HTML report beside it, prints the headline, and exits 1 on
/// any gate failure.
func finishSoak(_ command: String, summary: ArtifactJSON, report: HTMLReport, path: String, headline: String, failures: [String]) throws {
    let reportPath = SoakRunner.reportPath(forSummary: path)
    do {
        try summary.write(to: path)
        try report.write(to: reportPath)
    } catch {
        harnessLog("relay-load \(command): could not write \(path): \(error)")
        throw ExitCode(1)
    }
    print(headline)
    print("summary: \(path)\nreport: \(reportPath)")
    guard failures.isEmpty else {
        print("FAILED")
        for failure in failures { print("  - \(failure)") }
        throw Outcome.fail()
    }
    print("PASS")
}

// MARK: Benchmark modes

/// Resolves the relay (a local one gets `overrides`), runs `body`, stops a local relay, writes
/// the artifact and exits 1 when the run failed or missed the mode's target (`passFlag`).
func runMode(
    _ mode: String, common: ModeConfiguration, overrides: [String: String], passFlag: String?, openFiles: Int = 65536,
    _ body: (RelayUnderTest) async -> LoadResult
) async throws {
    // Raised before a local relay starts, so that it inherits the limit too.
    MachineFacts.raiseOpenFileLimit(to: openFiles)
    let relay: RelayUnderTest
    do {
        relay = try await RelayUnderTest.resolve(baseURL: common.baseURL, origin: common.origin, overrides: overrides)
    } catch {
        harnessLog("relay-load \(mode): could not start a local relay: \(error)")
        throw ExitCode(1)
    }
    harnessLog("relay-load \(mode) against \(relay.baseURL)" + (relay.local != nil ? " (local relay)" : ""))
    let result = await body(relay)
    await relay.shutdown()
    try finish(result, path: common.resultsPath, assertionFailures: modeFailures(result, passFlag: passFlag))
}

/// A mode that starts the processes it measures itself (exit 1 when it cannot), then as ``runMode``.
func runStartingItsOwn(
    _ mode: String, what: String, path: String?, passFlag: String, _ body: () async throws -> LoadResult
) async throws {
    let result: LoadResult
    do {
        result = try await body()
    } catch {
        harnessLog("relay-load \(mode): could not start \(what): \(error)")
        throw ExitCode(1)
    }
    try finish(result, path: path, assertionFailures: modeFailures(result, passFlag: passFlag))
}

/// Task failures, then the mode's own target.
func modeFailures(_ result: LoadResult, passFlag: String?) -> [String] {
    var failures = result.errors.prefix(5).map { "error: \($0)" }
    if result.errors.count > 5 { failures.append("… \(result.errors.count - 5) more errors") }
    if let passFlag, let value = result.extra.first(where: { $0.0 == passFlag })?.1, value != .bool(true) {
        failures.append("\(passFlag) is false")
    }
    return failures
}

struct ThroughputMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "Open-loop command round trips at RELAY_LOAD_RATE/s for RELAY_LOAD_DURATION_S over RELAY_LOAD_SESSIONS sessions.")

    func run() async throws {
        let configuration = ThroughputConfiguration(environment: processEnvironment)
        try await runMode("throughput", common: configuration.common, overrides: Throughput.relayOverrides, passFlag: "passes_p99_budget") {
            await Throughput.run(configuration, relay: $0)
        }
    }
}

struct ScaleMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale", abstract: "Holds RELAY_LOAD_SOCKETS authenticated idle sockets; reports the relay's memory per socket.")

    func run() async throws {
        let configuration = ScaleConfiguration(environment: processEnvironment)
        // Both ends of every socket live on this machine: the harness and the relay it starts
        // (which inherits the limit) each need one descriptor per socket.
        let openFiles = configuration.sockets * 2 + 4096
        let limit = MachineFacts.raiseOpenFileLimit(to: openFiles)
        if limit < configuration.sockets + 1024 {
            harnessLog("relay-load scale: the open-file limit is \(limit); \(configuration.sockets) sockets need more (run as root or raise ulimit -n)")
        }
        try await runMode(
            "scale", common: configuration.common, overrides: Scale.relayOverrides(sockets: configuration.sockets),
            passFlag: "passes_memory_budget", openFiles: openFiles
        ) { await Scale.run(configuration, relay: $0) }
    }
}

struct FanoutMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout", abstract: "One desktop streams RELAY_LOAD_MESSAGES events to RELAY_LOAD_PHONES phones of its session.")

    func run() async throws {
        let configuration = FanoutConfiguration(environment: processEnvironment)
        try await runMode("fanout", common: configuration.common, overrides: Fanout.relayOverrides(phones: configuration.phones), passFlag: nil) {
            await Fanout.run(configuration, relay: $0)
        }
    }
}

struct PairingRateMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairing-rate",
        abstract: "RELAY_LOAD_PAIRINGS complete pairings, RELAY_LOAD_SETUP_CONCURRENCY at once, with Redis (started locally unless RELAY_LOAD_REDIS_URL).")

    func run() async throws {
        let configuration = PairingRateConfiguration(environment: processEnvironment)
        var redis: LocalRedis?
        var redisURL = configuration.redisURL
        if configuration.common.baseURL == nil, redisURL == nil {
            do {
                let started = try await LocalRedis.start()
                redis = started
                redisURL = started.url
            } catch {
                harnessLog("relay-load pairing-rate: could not start redis-server: \(error)")
                throw ExitCode(1)
            }
        }
        defer { redis?.stop() }
        try await runMode(
            "pairing-rate", common: configuration.common,
            overrides: PairingRate.relayOverrides(concurrency: configuration.concurrency, redisURL: redisURL ?? ""),
            passFlag: "passes_rate_target"
        ) { await PairingRate.run(configuration, relay: $0, redisPID: redis?.pid) }
    }
}

struct SlowConsumersMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slow-consumers",
        abstract: "Desktops stream to phones; RELAY_LOAD_SLOW_SHARE of the phones stop reading; the others' latency must not move.")

    func run() async throws {
        let configuration = SlowConsumerConfiguration(environment: processEnvironment)
        try await runMode("slow-consumers", common: configuration.common, overrides: SlowConsumers.relayOverrides, passFlag: "passes_isolation") {
            await SlowConsumers.run(configuration, relay: $0)
        }
    }
}

struct EndToEndMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "Extension 12's costs: client CPU to seal and open an envelope; relay CPU per sealed frame against the same content in plaintext.")

    func run() async throws {
        let configuration = EndToEndCostConfiguration(environment: processEnvironment)
        try await runMode("e2e", common: configuration.common, overrides: Throughput.relayOverrides, passFlag: nil) {
            await EndToEndCost.run(configuration, relay: $0)
        }
    }
}

struct ResumeMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Phones drop and relay.resume while their desktop streams; counts lost, duplicated and reordered envelopes per phone.")

    func run() async throws {
        let configuration = ResumeConfiguration(environment: processEnvironment)
        if configuration.cluster {
            try await runStartingItsOwn("resume", what: "the local cluster", path: configuration.common.resultsPath, passFlag: "passes_no_loss") {
                try await ResumeUnderTraffic.runOnCluster(configuration)
            }
            return
        }
        try await runMode(
            "resume", common: configuration.common, overrides: ResumeUnderTraffic.relayOverrides(configuration),
            passFlag: "passes_no_loss"
        ) { await ResumeUnderTraffic.run(configuration, relay: $0) }
    }
}

struct CrossNodeMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cross-node",
        abstract: "Starts Redis, NATS and two relay nodes on loopback; compares round trips with phones on the other node to one node.")

    func run() async throws {
        let configuration = CrossNodeConfiguration(environment: processEnvironment)
        try await runStartingItsOwn(
            "cross-node", what: "the local cluster", path: configuration.load.resultsPath, passFlag: "passes_cross_node_target"
        ) { try await CrossNode.run(configuration) }
    }
}

struct FloorMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "floor",
        abstract: "Steady-state round trips through a local relay and through relay-floor (a bare NIO forwarder), alternating; CPU per message and their ratio.")

    func run() async throws {
        let configuration = FloorComparisonConfiguration(environment: processEnvironment)
        try await runStartingItsOwn(
            "floor", what: "the relay or the floor", path: configuration.common.resultsPath, passFlag: "passes_floor_target"
        ) { try await FloorComparison.run(configuration) }
    }
}

struct ClusterSoakMode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-soak",
        abstract: "Redis, NATS and three relay nodes on loopback; cross-node sessions under churn, a node kill and a rolling restart.")

    func run() async throws {
        let configuration = ClusterSoakConfiguration(environment: processEnvironment)
        MachineFacts.raiseOpenFileLimit(to: 65536)
        let (summary, report, passed): (ArtifactJSON, HTMLReport, Bool)
        do {
            (summary, report, passed) = try await ClusterSoak.run(configuration)
        } catch {
            harnessLog("relay-load cluster-soak: could not start the local cluster: \(error)")
            throw ExitCode(1)
        }
        let figures = ["messages_delivered", "messages_resent", "messages_lost", "messages_reordered", "lost_sessions", "phone_reconnects", "desktop_reconnects", "p50_latency_us", "p99_latency_us", "max_latency_us"]
        let headline = "cluster-soak:" + figures.compactMap { key in summary[key].map { " \(key)=\($0.pretty.trimmingCharacters(in: .whitespacesAndNewlines))" } }.joined()
        var failures: [String] = []
        if case .array(let listed)? = summary["gate_failures"] {
            for case .string(let failure) in listed { failures.append(failure) }
        }
        if !passed && failures.isEmpty { failures.append("status failed") }
        try finishSoak("cluster-soak", summary: summary, report: report, path: configuration.summaryPath, headline: headline, failures: failures)
    }
}

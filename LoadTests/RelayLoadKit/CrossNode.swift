// Cross-node round trips: the §9.1 scenario with each phone on another node of a local cluster,
// so every command crosses NATS, against the same scenario on one node of the same cluster.

import Foundation
import RelayLocalCluster

/// Configuration of the cross-node mode.
public struct CrossNodeConfiguration: Sendable {
    public var load = SessionLoadConfiguration()
    /// Alternating single-node and cross-node runs; the medians of their p50s are compared.
    public var rounds = 3

    public init() {
        load.sessions = 20
        load.messagesPerSession = 50
        load.setupConcurrency = 4
    }

    /// `RELAY_LOAD_ROUNDS`, the §9.1 variables (defaults 20 sessions × 50 messages, 4 at once:
    /// round-trip latency, not saturation) and `RELAY_LOAD_RESULTS_PATH`.
    public init(environment: HarnessEnvironment) {
        self.init()
        rounds = environment.positiveInt("RELAY_LOAD_ROUNDS", default: rounds)
        load.sessions = environment.positiveInt("RELAY_LOAD_SESSIONS", default: load.sessions)
        load.messagesPerSession = environment.positiveInt("RELAY_LOAD_MESSAGES_PER_SESSION", default: load.messagesPerSession)
        load.setupConcurrency = environment.positiveInt("RELAY_LOAD_SETUP_CONCURRENCY", default: load.setupConcurrency)
        load.origin = environment.string("RELAY_LOAD_ORIGIN") ?? load.origin
        load.resultsPath = environment.string("RELAY_LOAD_RESULTS_PATH") ?? "output/remote-control/relay-cross-node-result.json"
        load.progress = environment.bool("RELAY_LOAD_PROGRESS", default: true)
    }
}

/// The cross-node mode.
public enum CrossNode {
    /// Starts Redis, NATS and two relay nodes on loopback, runs the rounds, stops everything.
    public static func run(_ configuration: CrossNodeConfiguration) async throws -> LoadResult {
        let cluster = try await LocalCluster.start(
            nodes: 2, redis: .local(), nats: .local(),
            environment: ["ALLOWED_ORIGINS": configuration.load.origin, "MAX_PAIR_REQUESTS_PER_MINUTE": "20000"])
        let relay = RelayUnderTest(baseURL: cluster.baseURL(0), pids: [cluster.pid(0), cluster.pid(1)])
        var single: [LoadResult] = []
        var cross: [LoadResult] = []
        let crossSamples = LatencyRecorder()
        for round in 1...configuration.rounds {
            var load = configuration.load
            load.phoneBaseURL = nil
            harnessLog("[cross-node] round \(round)/\(configuration.rounds): single node")
            single.append(await SessionLoad.run(load, relay: relay))
            load.phoneBaseURL = cluster.baseURL(1)
            harnessLog("[cross-node] round \(round)/\(configuration.rounds): phones on node 1")
            cross.append(await SessionLoad.run(load, relay: relay, alsoRecordInto: crossSamples))
        }
        _ = await cluster.shutdown()

        func median(_ values: [Int]) -> Int { values.sorted()[values.count / 2] }
        let singleP50 = median(single.map(\.latency.p50))
        let crossP50 = median(cross.map(\.latency.p50))
        let errors = (single + cross).flatMap(\.errors)
        let last = cross[cross.count - 1]
        var extra: [(String, ArtifactJSON)] = [
            ("nodes", .int(2)),
            ("phone_base_url", .string(cluster.baseURL(1))),
            ("rounds", .int(configuration.rounds)),
            ("single_node_p50_us", .int(singleP50)),
            ("cross_node_p50_us", .int(crossP50)),
            ("p50_delta_us", .int(crossP50 - singleP50)),
            ("single_node_p95_us", .int(median(single.map(\.latency.p95)))),
            ("cross_node_p95_us", .int(median(cross.map(\.latency.p95)))),
            ("passes_cross_node_target", .bool(errors.isEmpty && crossP50 - singleP50 <= 1000)),
        ]
        extra += single.enumerated().map { ("single_node_round_\($0.offset + 1)_p50_us", .int($0.element.latency.p50)) }
        extra += cross.enumerated().map { ("cross_node_round_\($0.offset + 1)_p50_us", .int($0.element.latency.p50)) }
        let usage = cross.compactMap(\.usage).reduce(into: RunUsage(wallSeconds: 0, machineCores: MachineFacts.cores)) { total, usage in
            total.wallSeconds += usage.wallSeconds
            total.relayCPUSeconds = (total.relayCPUSeconds ?? 0) + (usage.relayCPUSeconds ?? 0)
            total.relayPeakMemoryBytes = max(total.relayPeakMemoryBytes ?? 0, usage.relayPeakMemoryBytes ?? 0)
            total.harnessCPUSeconds = (total.harnessCPUSeconds ?? 0) + (usage.harnessCPUSeconds ?? 0)
            total.harnessPeakMemoryBytes = max(total.harnessPeakMemoryBytes ?? 0, usage.harnessPeakMemoryBytes ?? 0)
        }
        return LoadResult(
            mode: "cross-node", baseURL: cluster.baseURL(0), origin: configuration.load.origin, sessions: configuration.load.sessions,
            messagesPerSession: configuration.load.messagesPerSession,
            latency: crossSamples.summary,
            p95BudgetMilliseconds: configuration.load.p95BudgetMilliseconds, counters: last.counters, errors: errors,
            usage: usage, extra: extra, timeline: crossSamples.timeline)
    }
}

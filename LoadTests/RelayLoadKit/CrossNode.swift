// Cross-node round trips: the §9.1 scenario with each phone on another node of a local cluster,
// so every command crosses NATS, against the same scenario on one node of the same cluster.

import Foundation
import RelayTestClient
import RelayLocalCluster

/// Configuration of the cross-node mode.
package struct CrossNodeConfiguration: Sendable {
    package var load = SessionLoadConfiguration()
    /// Alternating single-node and cross-node runs; the medians of their p50s are compared.
    package var rounds = 3
    /// Steady-state round trips per session in each CPU round (phones echoed by their desktops,
    /// sockets already open): the relays' CPU per forwarded message, one node against two.
    package var steadyRoundTrips = 200
    /// Cross-node CPU per message may be at most this many times the single-node figure.
    package var cpuTargetRatio = 2.0

    package init() {
        load.sessions = 20
        load.messagesPerSession = 50
        load.setupConcurrency = 4
    }

    /// `RELAY_LOAD_ROUNDS`, the §9.1 variables (defaults 20 sessions × 50 messages, 4 at once:
    /// round-trip latency, not saturation) and `RELAY_LOAD_RESULTS_PATH`.
    package init(environment: HarnessEnvironment) {
        self.init()
        rounds = environment.positiveInt("RELAY_LOAD_ROUNDS", default: rounds)
        steadyRoundTrips = environment.positiveInt("RELAY_LOAD_STEADY_ROUND_TRIPS", default: steadyRoundTrips)
        cpuTargetRatio = environment.string("RELAY_LOAD_CPU_TARGET_RATIO").flatMap(Double.init) ?? cpuTargetRatio
        load.sessions = environment.positiveInt("RELAY_LOAD_SESSIONS", default: load.sessions)
        load.messagesPerSession = environment.positiveInt("RELAY_LOAD_MESSAGES_PER_SESSION", default: load.messagesPerSession)
        load.setupConcurrency = environment.positiveInt("RELAY_LOAD_SETUP_CONCURRENCY", default: load.setupConcurrency)
        load.origin = environment.string("RELAY_LOAD_ORIGIN") ?? load.origin
        load.resultsPath = environment.string("RELAY_LOAD_RESULTS_PATH") ?? "output/remote-control/relay-cross-node-result.json"
        load.progress = environment.bool("RELAY_LOAD_PROGRESS", default: true)
    }
}

/// The cross-node mode.
package enum CrossNode {
    /// Starts Redis, NATS and two relay nodes on loopback, runs the rounds, stops everything.
    package static func run(_ configuration: CrossNodeConfiguration) async throws -> LoadResult {
        let cluster = try await LocalCluster.start(
            nodes: 2, redis: .local(), nats: .local(),
            environment: Throughput.relayOverrides.merging(
                ["ALLOWED_ORIGINS": configuration.load.origin, "MAX_PAIR_REQUESTS_PER_MINUTE": "20000"]) { $1 })
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
        let cpu = await steadyCPU(configuration, cluster: cluster)
        _ = await cluster.shutdown()

        let singleP50 = median(single.map(\.latency.p50)) ?? 0
        let crossP50 = median(cross.map(\.latency.p50)) ?? 0
        let errors = (single + cross).flatMap(\.errors) + cpu.errors
        let last = cross[cross.count - 1]
        var extra: [(String, ArtifactJSON)] = [
            ("nodes", .int(2)),
            ("phone_base_url", .string(cluster.baseURL(1))),
            ("rounds", .int(configuration.rounds)),
            ("single_node_p50_us", .int(singleP50)),
            ("cross_node_p50_us", .int(crossP50)),
            ("p50_delta_us", .int(crossP50 - singleP50)),
            ("single_node_p95_us", .int(median(single.map(\.latency.p95)) ?? 0)),
            ("cross_node_p95_us", .int(median(cross.map(\.latency.p95)) ?? 0)),
            ("single_node_cpu_us_per_message", .double((cpu.single * 100).rounded() / 100)),
            ("cross_node_cpu_us_per_message", .double((cpu.cross * 100).rounded() / 100)),
            ("cross_to_single_cpu_ratio", .double((cpu.ratio * 100).rounded() / 100)),
            ("cpu_target_ratio", .double(configuration.cpuTargetRatio)),
            ("passes_cross_node_cpu_target", .bool(cpu.errors.isEmpty && cpu.ratio > 0 && cpu.ratio <= configuration.cpuTargetRatio)),
            ("passes_cross_node_target", .bool(
                errors.isEmpty && cpu.errors.isEmpty && crossP50 - singleP50 <= 1000 && cpu.ratio > 0
                    && cpu.ratio <= configuration.cpuTargetRatio)),
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

    /// The relays' CPU (both nodes) per forwarded message in steady state: sessions whose phone is
    /// on the desktop's node against sessions whose phone is on the other node, alternating, the
    /// medians compared. Every cross-node message is signed, published, received and verified.
    static func steadyCPU(
        _ configuration: CrossNodeConfiguration, cluster: LocalCluster
    ) async -> (single: Double, cross: Double, ratio: Double, errors: [String]) {
        let load = configuration.load
        var errors: [String] = []
        var pairs: [Bool: [SteadyStatePair]] = [:]
        let relay = RelayUnderTest(baseURL: cluster.baseURL(0), pids: [cluster.pid(0), cluster.pid(1)])
        for crossing in [false, true] {
            pairs[crossing] = SteadyStatePair.pairs(of: await relay.pairSessions(
                count: load.sessions, width: load.setupConcurrency, origin: load.origin,
                phoneBaseURL: crossing ? cluster.baseURL(1) : nil, errors: &errors))
        }
        guard errors.isEmpty else { return (0, 0, 0, errors) }
        var figures: [Bool: [Double]] = [:]
        for round in 1...configuration.rounds {
            let firstSeq = UInt64((round - 1) * configuration.steadyRoundTrips + 1)
            for crossing in [false, true] {
                let list = pairs[crossing]!
                harnessLog("[cross-node] steady round \(round)/\(configuration.rounds): \(crossing ? "phones on node 1" : "single node")")
                let measured = await SteadyState.measure(
                    pairs: list, roundTrips: configuration.steadyRoundTrips, round: round, firstSeq: firstSeq,
                    timeout: load.roundTripTimeout, pids: relay.pids)
                errors += measured.failures
                harnessLog(String(format: "[cross-node]   %.2f µs CPU per message (both nodes)", measured.cpuMicrosPerMessage))
                figures[crossing, default: []].append(measured.cpuMicrosPerMessage)
            }
        }
        for list in pairs.values {
            for pair in list {
                await pair.phone.close()
                await pair.desktop.close()
            }
        }
        let single = median(figures[false] ?? []) ?? 0, cross = median(figures[true] ?? []) ?? 0
        return (single, cross, single > 0 ? cross / single : 0, errors)
    }
}

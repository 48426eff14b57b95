// The relay against its floor: the same steady-state round trips through a local release relay
// and through `relay-floor` (a bare SwiftNIO forwarder), alternating, in one run, so the relay's
// CPU per forwarded message is reported as a ratio to what forwarding alone costs on this machine
// at this moment.

import Foundation
import RelayTestClient
import RelayLocalCluster

/// Configuration of the floor comparison.
package struct FloorComparisonConfiguration: Sendable {
    package var sessions = 50
    /// Round trips per session in each round (two forwarded messages each).
    package var roundTrips = 400
    /// Measured rounds, after one warm-up round; each runs the relay, then the floor, and the
    /// median of the rounds' ratios is the figure.
    package var rounds = 5
    package var setupConcurrency = 16
    package var roundTripTimeout: Duration = .seconds(5)
    /// The relay's CPU per message may be at most this many times the floor's.
    package var targetRatio = 1.5
    /// Event-loop threads of both processes: the relay's `EVENT_LOOP_THREADS` and the floor's
    /// `NIO_SINGLETON_GROUP_LOOP_COUNT`. 1 is the relay's default.
    package var eventLoops = 1
    package var common = ModeConfiguration()

    package init() {}

    /// `RELAY_LOAD_SESSIONS` (50), `RELAY_LOAD_MESSAGES_PER_SESSION` (round trips per round, 400),
    /// `RELAY_LOAD_ROUNDS` (5), `RELAY_LOAD_SETUP_CONCURRENCY` (16), `RELAY_FLOOR_TARGET_RATIO`
    /// (1.5, a decimal), `RELAY_FLOOR_EVENT_LOOPS` (1) and the common variables. `RELAY_LOAD_BASE_URL` is not read: CPU is
    /// measured on processes the harness starts.
    package init(environment: HarnessEnvironment) {
        sessions = environment.positiveInt("RELAY_LOAD_SESSIONS", default: sessions)
        roundTrips = environment.positiveInt("RELAY_LOAD_MESSAGES_PER_SESSION", default: roundTrips)
        rounds = environment.positiveInt("RELAY_LOAD_ROUNDS", default: rounds)
        setupConcurrency = environment.positiveInt("RELAY_LOAD_SETUP_CONCURRENCY", default: setupConcurrency)
        targetRatio = environment.string("RELAY_FLOOR_TARGET_RATIO").flatMap(Double.init) ?? targetRatio
        eventLoops = environment.positiveInt("RELAY_FLOOR_EVENT_LOOPS", default: eventLoops)
        common = ModeConfiguration(environment: environment, mode: "floor")
        common.baseURL = nil
    }
}

/// The floor comparison mode.
package enum FloorComparison {
    /// The `relay-floor` executable: `RELAY_FLOOR_BINARY`, else beside the `relay` the harness runs.
    package static func floorExecutable() throws -> String {
        if let configured = ProcessInfo.processInfo.environment["RELAY_FLOOR_BINARY"], !configured.isEmpty { return configured }
        let relay = try LocalRelayNode.defaultExecutable()
        let candidate = String(relay[..<relay.lastIndex(of: "/")!]) + "/relay-floor"
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw LocalClusterError("no relay-floor executable at \(candidate): build it (swift build -c release --product relay-floor) or set RELAY_FLOOR_BINARY")
        }
        return candidate
    }

    /// What one side spent in one round.
    struct Round {
        var cpuMicrosPerMessage: Double
        var latency: LatencySummary
    }

    package static func run(_ configuration: FloorComparisonConfiguration) async throws -> LoadResult {
        let loops = "\(configuration.eventLoops)"
        let relay = try await RelayUnderTest.resolve(
            baseURL: nil, origin: configuration.common.origin, overrides: Throughput.relayOverrides.merging(["EVENT_LOOP_THREADS": loops]) { $1 })
        let floorPort = try freeLoopbackPort()
        let floor: LocalRelayNode
        do {
            floor = try LocalRelayNode.launch(
                executable: try floorExecutable(), port: floorPort, environment: ["NIO_SINGLETON_GROUP_LOOP_COUNT": loops])
            try await floor.waitUntilHealthy()
        } catch {
            await relay.shutdown()
            throw error
        }

        var errors: [String] = []
        let sessions = await relay.pairSessions(
            count: configuration.sessions, width: configuration.setupConcurrency, origin: configuration.common.origin, errors: &errors)
        let relayPairs = SteadyStatePair.pairs(of: sessions)
        let floorPairs = Locked<[Int: SteadyStatePair]>([:])
        errors += await forEachConcurrently(count: configuration.sessions, width: configuration.setupConcurrency) { index in
            let url = "ws://127.0.0.1:\(floorPort)/floor/s\(index)"
            let desktop = try await RelayWebSocket.connect(to: url)
            let phone = try await RelayWebSocket.connect(to: url)
            floorPairs.withLock { $0[index] = SteadyStatePair(index: index, phone: phone, desktop: desktop, sessionID: "floor-\(index)") }
        }.map { "floor socket pair \($0.0): \($0.1)" }
        let floorList = floorPairs.withLock { pairs in pairs.keys.sorted().map { pairs[$0]! } }

        var relayRounds: [Round] = []
        var floorRounds: [Round] = []
        let relayAll = LatencyRecorder()
        let harnessStart = RunAccounting(relayPIDs: relay.pids + [floor.pid])
        if errors.isEmpty {
            // Round 0 warms both up (first-use page faults, pools, caches) and is not counted.
            for round in 0...configuration.rounds {
                let firstSeq = UInt64(round * configuration.roundTrips + 1)
                for (name, pairs, pid) in [("relay", relayPairs, relay.pids[0]), ("floor", floorList, floor.pid)] {
                    harnessLog("[floor] round \(round)/\(configuration.rounds)\(round == 0 ? " (warm-up)" : ""): \(name), \(pairs.count) sessions × \(configuration.roundTrips) round trips")
                    let measured = await SteadyState.measure(
                        pairs: pairs, roundTrips: configuration.roundTrips, round: round, firstSeq: firstSeq,
                        timeout: configuration.roundTripTimeout, pids: [pid])
                    errors += measured.failures.map { "\(name) round \(round): \($0)" }
                    let result = Round(cpuMicrosPerMessage: measured.cpuMicrosPerMessage, latency: measured.latency.summary)
                    harnessLog(String(format: "[floor]   %@: %.2f µs CPU per message, p50 %@ ms", name, result.cpuMicrosPerMessage, SessionLoad.ms(result.latency.p50)))
                    if round == 0 {
                        continue
                    } else if name == "relay" {
                        relayRounds.append(result)
                        for sample in measured.latency.micros { relayAll.record(.microseconds(sample)) }
                    } else {
                        floorRounds.append(result)
                    }
                }
            }
        }
        let usage = harnessStart.snapshot()
        let counters = (try? await relay.counters()) ?? RelayCounters()
        for pair in floorList {
            await pair.phone.close()
            await pair.desktop.close()
        }
        try? await floor.kill()
        await relay.shutdown()

        let relayCPU = median(relayRounds.map(\.cpuMicrosPerMessage)) ?? 0
        let floorCPU = median(floorRounds.map(\.cpuMicrosPerMessage)) ?? 0
        // Each round's relay and floor phases run back to back, so their ratio is taken under one
        // state of the machine (whose speed drifts over minutes); the target is the median of the
        // rounds' ratios. The ratio of the two medians is reported beside it.
        let roundRatios = zip(relayRounds, floorRounds).map { $1.cpuMicrosPerMessage > 0 ? $0.cpuMicrosPerMessage / $1.cpuMicrosPerMessage : 0 }
        let ratio = median(roundRatios) ?? 0
        let ratioOfMedians = floorCPU > 0 ? relayCPU / floorCPU : 0
        func rounded(_ value: Double) -> ArtifactJSON { .double((value * 100).rounded() / 100) }
        var extra: [(String, ArtifactJSON)] = relay.relayMembers
        extra += [
            ("rounds", .int(configuration.rounds)),
            ("round_trips_per_session", .int(configuration.roundTrips)),
            ("forwarded_messages_per_round", .int(2 * configuration.sessions * configuration.roundTrips)),
            ("relay_cpu_us_per_message", rounded(relayCPU)),
            ("floor_cpu_us_per_message", rounded(floorCPU)),
            ("relay_to_floor_ratio", rounded(ratio)),
            ("relay_to_floor_ratio_of_medians", rounded(ratioOfMedians)),
            ("target_ratio", rounded(configuration.targetRatio)),
            ("event_loop_threads", .int(configuration.eventLoops)),
            ("relay_p50_us", .int(median(relayRounds.map(\.latency.p50)) ?? 0)),
            ("relay_p99_us", .int(median(relayRounds.map(\.latency.p99)) ?? 0)),
            ("floor_p50_us", .int(median(floorRounds.map(\.latency.p50)) ?? 0)),
            ("floor_p99_us", .int(median(floorRounds.map(\.latency.p99)) ?? 0)),
            ("passes_floor_target", .bool(errors.isEmpty && ratio > 0 && ratio <= configuration.targetRatio)),
        ]
        extra += relayRounds.enumerated().map { ("relay_round_\($0.offset + 1)_cpu_us_per_message", rounded($0.element.cpuMicrosPerMessage)) }
        extra += floorRounds.enumerated().map { ("floor_round_\($0.offset + 1)_cpu_us_per_message", rounded($0.element.cpuMicrosPerMessage)) }
        extra += roundRatios.enumerated().map { ("round_\($0.offset + 1)_ratio", rounded($0.element)) }
        return LoadResult(
            mode: "floor", baseURL: relay.baseURL, origin: configuration.common.origin, sessions: configuration.sessions,
            messagesPerSession: configuration.roundTrips * configuration.rounds, latency: relayAll.summary,
            p95BudgetMilliseconds: 1000, counters: counters, errors: errors, usage: usage, extra: extra, timeline: relayAll.timeline)
    }
}

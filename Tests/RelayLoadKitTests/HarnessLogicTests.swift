import Foundation
import RelayTestClient
import Testing

@testable import RelayLoadKit

@Suite("Harness logic: percentiles, artifacts, gate and soak decisions", .timeLimit(.minutes(2)))
struct HarnessLogicTests {
    // MARK: Percentiles

    @Test func percentilesUseTheRoundedIndexRule() {
        let summary = LatencySummary(samples: Array((1...100).reversed()))
        // index round((n−1)×p): 49.5 → 50, 94.05 → 94, 98.01 → 98, 98.901 → 99
        #expect(summary.count == 100)
        #expect(summary.p50 == 51)
        #expect(summary.p95 == 95)
        #expect(summary.p99 == 99)
        #expect(summary.p999 == 100)
        #expect(summary.max == 100)
        #expect(summary.mean == 50.5)
        #expect(LatencySummary(samples: []).p95 == 0)
        #expect(LatencySummary(samples: [7]).p50 == 7)
    }

    @Test func millisecondsAreTheCeilingOfMicroseconds() {
        #expect(LatencySummary.milliseconds(0) == 0)
        #expect(LatencySummary.milliseconds(1) == 1)
        #expect(LatencySummary.milliseconds(1000) == 1)
        #expect(LatencySummary.milliseconds(1001) == 2)
    }

    @Test func recorderCountsSubMicrosecondSamplesAsOneAndBucketsBySecond() {
        let start = ContinuousClock.now
        let recorder = LatencyRecorder(started: start)
        recorder.record(.nanoseconds(10), at: start + .milliseconds(10))
        recorder.record(.microseconds(300), at: start + .milliseconds(900))
        recorder.record(.microseconds(5000), at: start + .milliseconds(2100))
        #expect(recorder.micros == [1, 300, 5000])
        #expect(recorder.timeline.map(\.second) == [0, 2])
        #expect(recorder.timeline.map(\.count) == [2, 1])
        #expect(recorder.timeline[1].p99 == 5000)
        #expect(recorder.summary(since: .seconds(1)).count == 1)
    }

    // MARK: Environment

    @Test func environmentFollowsTheReferenceParsingRules() throws {
        let environment = HarnessEnvironment([
            "RELAY_LOAD_SESSIONS": "0", "RELAY_LOAD_MESSAGES_PER_SESSION": "abc", "RELAY_LOAD_SETUP_CONCURRENCY": " 8 ",
            "RELAY_LOAD_BASE_URL": " http://127.0.0.1:9000// ", "RELAY_LOAD_ORIGIN": "  ", "RELAY_LOAD_P95_BUDGET_MS": "-5",
        ])
        let configuration = SessionLoadConfiguration(environment: environment)
        #expect(configuration.sessions == 50)
        #expect(configuration.messagesPerSession == 10)
        #expect(configuration.setupConcurrency == 8)
        #expect(configuration.baseURL == "http://127.0.0.1:9000")
        #expect(configuration.origin == "http://localhost:4173")
        #expect(configuration.p95BudgetMilliseconds == 750)
        #expect(configuration.resultsPath == nil)
        #expect(throws: HarnessConfigurationError.self) { try HarnessEnvironment(["X": "ten"]).threshold("X") }
        #expect(throws: HarnessConfigurationError.self) { try HarnessEnvironment(["X": "-1"]).threshold("X") }
        #expect(try HarnessEnvironment(["X": " 12 "]).threshold("X") == 12)
    }

    // MARK: Artifacts

    static let referenceKeys = [
        "status", "base_url", "origin", "sessions", "messages_per_session", "sample_count", "p50_latency_us",
        "p95_latency_us", "p99_latency_us", "max_latency_us", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms",
        "max_latency_ms", "p95_latency_budget_ms", "passes_latency_budget", "outbound_send_failures",
        "slow_consumer_disconnects", "ws_auth_failures", "passes_backpressure_budget", "passes_auth_budget",
        "error_count", "first_error",
    ]

    static func keys(_ json: ArtifactJSON) -> [String] {
        guard case .object(let members) = json else { return [] }
        return members.map(\.0)
    }

    @Test func loadArtifactKeepsTheReferenceFieldsInOrderThenAddsOurs() throws {
        let result = LoadResult(
            mode: "load", baseURL: "http://127.0.0.1:1", origin: "http://localhost:4173", sessions: 2, messagesPerSession: 3,
            latency: LatencySummary(samples: [1500, 2500, 900, 4000, 1200, 3100]), p95BudgetMilliseconds: 3,
            counters: RelayCounters(outboundSendFailures: 0, slowConsumerDisconnects: 1, wsAuthFailures: 0),
            usage: RunUsage(wallSeconds: 1.5, machineCores: 2, relayCPUSeconds: 0.25, relayPeakMemoryBytes: 4096),
            extra: [("offered_rate", .int(10))])
        let json = result.json
        #expect(Array(Self.keys(json).prefix(23)) == Self.referenceKeys)
        #expect(Self.keys(json).contains("relay_cpu_seconds"))
        #expect(Self.keys(json).contains("machine_cores"))
        #expect(Self.keys(json).contains("harness_cpu_seconds"))
        #expect(Self.keys(json).last == "latency_timeline")
        #expect(json["status"] == .string("ok"))
        #expect(json["sample_count"] == .int(6))
        #expect(json["p95_latency_us"] == .int(4000))
        #expect(json["p95_latency_ms"] == .int(4))
        #expect(json["passes_latency_budget"] == .bool(false))
        #expect(json["passes_backpressure_budget"] == .bool(false))
        #expect(json["passes_auth_budget"] == .bool(true))
        #expect(json["first_error"] == .null)
        #expect(json["offered_rate"] == .int(10))
        // It parses back as JSON with the same figures (what the gate and the soak read).
        let parsed = try JSONValue.parse(json.pretty)
        #expect(parsed["p99_latency_us"]?.intValue == 4000)
        #expect(json.pretty.hasPrefix("{\n  \"status\": \"ok\",\n  \"base_url\": "))
    }

    @Test func taskFailuresZeroTheFiguresButKeepTheConfiguration() {
        let result = LoadResult(
            mode: "load", baseURL: "http://x", origin: "o", sessions: 200, messagesPerSession: 20,
            latency: LatencySummary(samples: [10, 20]), p95BudgetMilliseconds: 1000,
            counters: RelayCounters(outboundSendFailures: 3, slowConsumerDisconnects: 2, wsAuthFailures: 1),
            errors: ["session 4: timed out", "session 9: refused"])
        let json = result.json
        #expect(json["status"] == .string("task_failures"))
        #expect(json["sessions"] == .int(200))
        #expect(json["messages_per_session"] == .int(20))
        #expect(json["p95_latency_budget_ms"] == .int(1000))
        for key in ["sample_count", "p50_latency_us", "max_latency_ms", "outbound_send_failures", "slow_consumer_disconnects", "ws_auth_failures"] {
            #expect(json[key] == .int(0), "\(key)")
        }
        for key in ["passes_latency_budget", "passes_backpressure_budget", "passes_auth_budget"] {
            #expect(json[key] == .bool(false), "\(key)")
        }
        #expect(json["error_count"] == .int(2))
        #expect(json["first_error"] == .string("session 4: timed out"))
        #expect(SessionLoad.assertionFailures(result).count == 1)
    }

    @Test func assertionsCoverSampleCountAndBudgets() {
        let short = LoadResult(
            mode: "load", baseURL: "b", origin: "o", sessions: 2, messagesPerSession: 2,
            latency: LatencySummary(samples: [1, 2, 3]), p95BudgetMilliseconds: 750)
        #expect(SessionLoad.assertionFailures(short).first?.contains("sample_count 3") == true)
        let good = LoadResult(
            mode: "load", baseURL: "b", origin: "o", sessions: 1, messagesPerSession: 2,
            latency: LatencySummary(samples: [1, 2]), p95BudgetMilliseconds: 750)
        #expect(SessionLoad.assertionFailures(good).isEmpty)
    }

    // MARK: Gate (§9.2)

    static func artifact(_ overrides: [String: JSONValue] = [:]) -> JSONValue {
        var members: [String: JSONValue] = [
            "status": "ok", "sample_count": 4000, "p95_latency_us": 4200, "p95_latency_ms": 5, "p95_latency_budget_ms": 1000,
            "error_count": 0, "outbound_send_failures": 0, "slow_consumer_disconnects": 0, "ws_auth_failures": 0,
            "first_error": .null,
        ]
        for (key, value) in overrides { members[key] = value }
        return .object(members)
    }

    @Test func gatePassesAGoodArtifactWithDefaults() {
        let decision = Gate.evaluate(Self.artifact(), thresholds: GateThresholds())
        #expect(decision.passed)
        #expect(decision.report.hasSuffix("PASS"))
    }

    @Test func gateChecksStatusUnlessDisabled() throws {
        let failed = Self.artifact(["status": "task_failures", "first_error": "session 1: boom"])
        let decision = Gate.evaluate(failed, thresholds: GateThresholds())
        #expect(!decision.passed)
        #expect(decision.failures.contains { $0.contains("status is 'task_failures'") })
        #expect(decision.failures.contains { $0.contains("session 1: boom") })
        let disabled = try GateThresholds(environment: HarnessEnvironment(["RELAY_GATE_REQUIRE_STATUS": ""]))
        #expect(disabled.requireStatus == nil)
        #expect(Gate.evaluate(failed, thresholds: disabled).passed)
        let other = try GateThresholds(environment: HarnessEnvironment(["RELAY_GATE_REQUIRE_STATUS": "task_failures"]))
        #expect(Gate.evaluate(failed, thresholds: other).passed)
    }

    @Test func gateLatencyChecksFollowTheReferenceOrder() throws {
        // The artifact's own budget is the default ms gate.
        #expect(!Gate.evaluate(Self.artifact(["p95_latency_ms": 1001]), thresholds: GateThresholds()).passed)
        // No budget: the artifact's own p95, i.e. always passes.
        #expect(Gate.evaluate(Self.artifact(["p95_latency_ms": 9999, "p95_latency_budget_ms": 0]), thresholds: GateThresholds()).passed)
        // An explicit ms gate wins over the budget.
        let ms = try GateThresholds(environment: HarnessEnvironment(["RELAY_GATE_MAX_P95_MS": "4"]))
        #expect(Gate.evaluate(Self.artifact(), thresholds: ms).failures == ["p95_latency_ms 5 exceeds 4"])
        // A failing µs gate reports only itself; a passing one still lets the ms gate fail.
        let us = try GateThresholds(environment: HarnessEnvironment(["RELAY_GATE_MAX_P95_US": "4000", "RELAY_GATE_MAX_P95_MS": "4"]))
        #expect(Gate.evaluate(Self.artifact(), thresholds: us).failures == ["p95_latency_us 4200 exceeds 4000"])
        let usPass = try GateThresholds(environment: HarnessEnvironment(["RELAY_GATE_MAX_P95_US": "5000", "RELAY_GATE_MAX_P95_MS": "4"]))
        #expect(Gate.evaluate(Self.artifact(), thresholds: usPass).failures == ["p95_latency_ms 5 exceeds 4"])
    }

    @Test func gateChecksCountersAndSampleCount() throws {
        let bad = Self.artifact(["error_count": 1, "outbound_send_failures": 2, "slow_consumer_disconnects": 3, "ws_auth_failures": 4, "sample_count": 0])
        let failures = Gate.evaluate(bad, thresholds: GateThresholds()).failures
        #expect(failures.count == 5)
        let relaxed = try GateThresholds(environment: HarnessEnvironment([
            "RELAY_GATE_MAX_ERRORS": "1", "RELAY_GATE_MAX_OUTBOUND_SEND_FAILURES": "2",
            "RELAY_GATE_MAX_SLOW_CONSUMER_DISCONNECTS": "3", "RELAY_GATE_MAX_WS_AUTH_FAILURES": "4",
            "RELAY_GATE_MIN_SAMPLE_COUNT": "0",
        ]))
        #expect(Gate.evaluate(bad, thresholds: relaxed).passed)
        #expect(throws: HarnessConfigurationError.self) {
            try GateThresholds(environment: HarnessEnvironment(["RELAY_GATE_MAX_ERRORS": "none"]))
        }
    }

    @Test func gateFailsOnAMissingOrUndecodableArtifact() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(!Gate.evaluate(path: directory.appendingPathComponent("none.json").path, thresholds: GateThresholds()).passed)
        let garbage = directory.appendingPathComponent("garbage.json")
        try Data("not json".utf8).write(to: garbage)
        #expect(!Gate.evaluate(path: garbage.path, thresholds: GateThresholds()).passed)
    }

    // MARK: Soak (§9.3)

    static func loop(_ index: Int, exit: Int32 = 0, _ artifact: SoakLoop.Artifact) -> SoakLoop {
        SoakLoop(index: index, path: "loop-\(index).json", exitStatus: exit, artifact: artifact)
    }

    @Test func soakAggregatesLoopsAndPassesWhenAllAreGood() {
        let loops = (1...3).map { index in
            Self.loop(index, .decoded(Self.artifact(["p95_latency_us": .int(1000 * index), "p95_latency_ms": .int(index)])))
        }
        let summary = SoakSummary(expectedLoops: 3, loops: loops, thresholds: SoakThresholds())
        #expect(summary.passed)
        #expect(summary.okLoops == 3)
        #expect(summary.totalSamples == 12000)
        #expect(summary.maxP95Micros == 3000)
        #expect(summary.maxP95Milliseconds == 3)
        let json = summary.json(reportPath: "r.html")
        #expect(Array(Self.keys(json).prefix(18)) == [
            "status", "expected_loops", "artifact_loops", "ok_loops", "status_failures", "missing_artifacts",
            "load_script_failures", "failing_loops", "total_samples", "max_p95_latency_us", "max_p95_latency_ms",
            "total_errors", "total_outbound_send_failures", "total_slow_consumer_disconnects", "total_ws_auth_failures",
            "first_error", "gate", "gate_failures",
        ])
        #expect(Self.keys(json["gate"]!) == [
            "max_failing_loops", "max_p95_us", "max_p95_ms", "max_total_errors", "max_total_outbound_send_failures",
            "max_total_slow_consumer_disconnects", "max_total_ws_auth_failures", "min_total_samples",
        ])
        #expect(json["status"] == .string("ok"))
    }

    @Test func soakCountsMissingUndecodableAndFailedLoops() {
        let loops = [
            Self.loop(1, .decoded(Self.artifact())),
            Self.loop(2, exit: 1, .missing),
            Self.loop(3, exit: 1, .undecodable),
            Self.loop(4, exit: 1, .decoded(Self.artifact(["status": "task_failures", "error_count": 2, "first_error": "session 0: x"]))),
            Self.loop(5, exit: 1, .decoded(Self.artifact())),
        ]
        let summary = SoakSummary(expectedLoops: 5, loops: loops, thresholds: SoakThresholds())
        #expect(summary.artifactLoops == 4)
        #expect(summary.okLoops == 2)
        #expect(summary.statusFailures == 2)
        #expect(summary.missingArtifacts == ["loop-2.json"])
        #expect(summary.loadScriptFailures == 4)
        // max(status failures + missing, script failures)
        #expect(summary.failingLoops == 4)
        #expect(summary.totalErrors == 3)
        #expect(summary.firstError == "loop-3.json: artifact could not be decoded")
        #expect(!summary.passed)
        #expect(summary.json(reportPath: nil)["status"] == .string("failed"))
        #expect(summary.gateFailures.contains("failing_loops 4 exceeds 0"))
        #expect(summary.gateFailures.contains("total_errors 3 exceeds 0"))
    }

    @Test func soakLatencyGatesCheckMillisecondsOnlyWhenMicrosecondsPassed() {
        let loops = [Self.loop(1, .decoded(Self.artifact()))]
        var thresholds = SoakThresholds()
        thresholds.maxP95Micros = 4000
        thresholds.maxP95Milliseconds = 1
        #expect(SoakSummary(expectedLoops: 1, loops: loops, thresholds: thresholds).gateFailures == ["max_p95_latency_us 4200 exceeds 4000"])
        thresholds.maxP95Micros = 5000
        #expect(SoakSummary(expectedLoops: 1, loops: loops, thresholds: thresholds).gateFailures == ["max_p95_latency_ms 5 exceeds 1"])
        var samples = SoakThresholds()
        samples.minTotalSamples = 5000
        #expect(SoakSummary(expectedLoops: 1, loops: loops, thresholds: samples).gateFailures == ["total_samples 4000 is below the minimum 5000"])
    }

    @Test func soakTimelineLaysLoopsEndToEnd() {
        func withTimeline(_ seconds: [Int], duration: Double) -> JSONValue {
            Self.artifact([
                "duration_seconds": .double(duration),
                "latency_timeline": .array(seconds.map { second in
                    ["second": .int(second), "count": 1, "p50_us": 10, "p95_us": 20, "p99_us": 30, "max_us": 40]
                }),
            ])
        }
        let summary = SoakSummary(
            expectedLoops: 2, loops: [Self.loop(1, .decoded(withTimeline([0, 1], duration: 3.2))), Self.loop(2, .decoded(withTimeline([0], duration: 1)))],
            thresholds: SoakThresholds())
        #expect(summary.timeline.map(\.second) == [0, 1, 4])
    }

    // MARK: Accounting and reports

    @Test func processUsageParsesProcFiles() {
        let stat = "4242 (relay (worker) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1 2"
        let status = "Name:\trelay\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t9\n"
        let usage = ProcessUsage.parse(stat: stat, status: status, ticksPerSecond: 100)
        #expect(usage == ProcessUsage(cpuSeconds: 3.0, residentBytes: 10_485_760, peakResidentBytes: 20_971_520))
        #expect(ProcessUsage.parse(stat: "garbage", status: status, ticksPerSecond: 100) == nil)
        let mine = ProcessUsage.current
        #expect(mine != nil)
        #expect((mine?.residentBytes ?? 0) > 0)
    }

    @Test func htmlReportIsSelfContainedWithAChartAndATable() {
        let report = HTMLReport(
            title: "Relay <soak>", passed: false, facts: [("loops", "1 ok of 2")], failures: ["failing_loops 1 exceeds 0"],
            timeline: [LatencyBucket(second: 0, count: 5, p50: 900, p95: 1500, p99: 2000, max: 2500),
                       LatencyBucket(second: 1, count: 5, p50: 1000, p95: 1700, p99: 2600, max: 3000)],
            rows: [HTMLReport.Row(label: "loop 1", count: 10, p50: 950, p95: 1600, p99: 2600, max: 3000)],
            markers: [HTMLReport.Marker(second: 1, label: "kill node 1")])
        let html = report.html
        #expect(html.contains("<svg"))
        #expect(html.components(separatedBy: "<polyline").count == 4)
        #expect(html.contains("Relay &lt;soak&gt;"))
        #expect(html.contains("FAILED"))
        #expect(html.contains("kill node 1"))
        #expect(html.contains("<td>2.60</td>"))
        #expect(!html.contains("<script"))
        #expect(!html.contains(" src=") && !html.contains("<link"))
    }
}

@Suite("Cluster soak gate", .timeLimit(.minutes(2)))
struct ClusterSoakGateTests {
    @Test func anyLostSessionLostOrReorderedMessageFailsTheGate() {
        var tally = ClusterTrafficTally()
        tally.sent = 100
        tally.delivered = 100
        tally.resent = 7
        tally.duplicates = 2
        #expect(tally.gateFailures.isEmpty, "resends and duplicates are recovery, not loss")
        var lost = tally
        lost.lostMessages = 1
        #expect(lost.gateFailures == ["messages_lost 1 exceeds 0"])
        var reordered = tally
        reordered.reordered = 2
        #expect(reordered.gateFailures == ["messages_reordered 2 exceeds 0"])
        var session = tally
        session.lostSessions = ["session 3"]
        #expect(session.gateFailures.first?.hasPrefix("lost_sessions 1 exceeds 0") == true)
        #expect(!ClusterTrafficTally().gateFailures.isEmpty, "a soak that delivered nothing proves nothing")
    }
}

// The soak of PROTOCOL §9.3: repeated load runs, aggregated into one summary with its own gate.

import Foundation
import RelayTestClient

/// The soak gate's thresholds (§9.3), with the reference defaults.
package struct SoakThresholds: Sendable, Equatable {
    package var maxFailingLoops = 0
    package var maxP95Micros: Int?
    package var maxP95Milliseconds: Int?
    package var maxTotalErrors = 0
    package var maxTotalOutboundSendFailures = 0
    package var maxTotalSlowConsumerDisconnects = 0
    package var maxTotalWSAuthFailures = 0
    package var minTotalSamples = 1

    package init() {}

    /// Reads `RELAY_SOAK_MAX_*` and `RELAY_SOAK_MIN_TOTAL_SAMPLES`.
    package init(environment: HarnessEnvironment) throws {
        maxFailingLoops = try environment.threshold("RELAY_SOAK_MAX_FAILING_LOOPS", default: 0)
        maxP95Micros = try environment.threshold("RELAY_SOAK_MAX_P95_US")
        maxP95Milliseconds = try environment.threshold("RELAY_SOAK_MAX_P95_MS")
        maxTotalErrors = try environment.threshold("RELAY_SOAK_MAX_TOTAL_ERRORS", default: 0)
        maxTotalOutboundSendFailures = try environment.threshold("RELAY_SOAK_MAX_TOTAL_OUTBOUND_SEND_FAILURES", default: 0)
        maxTotalSlowConsumerDisconnects = try environment.threshold("RELAY_SOAK_MAX_TOTAL_SLOW_CONSUMER_DISCONNECTS", default: 0)
        maxTotalWSAuthFailures = try environment.threshold("RELAY_SOAK_MAX_TOTAL_WS_AUTH_FAILURES", default: 0)
        minTotalSamples = try environment.threshold("RELAY_SOAK_MIN_TOTAL_SAMPLES", default: 1)
    }

    var json: ArtifactJSON {
        .object([
            ("max_failing_loops", .int(maxFailingLoops)),
            ("max_p95_us", .optionalInt(maxP95Micros)),
            ("max_p95_ms", .optionalInt(maxP95Milliseconds)),
            ("max_total_errors", .int(maxTotalErrors)),
            ("max_total_outbound_send_failures", .int(maxTotalOutboundSendFailures)),
            ("max_total_slow_consumer_disconnects", .int(maxTotalSlowConsumerDisconnects)),
            ("max_total_ws_auth_failures", .int(maxTotalWSAuthFailures)),
            ("min_total_samples", .int(minTotalSamples)),
        ])
    }
}

/// What one soak loop left behind.
package struct SoakLoop: Sendable {
    package enum Artifact: Sendable {
        case missing
        case undecodable
        case decoded(JSONValue)
    }

    package let index: Int
    package let path: String
    /// The load run's exit status; non-zero counts as a load script failure.
    package let exitStatus: Int32
    package let artifact: Artifact

    package init(index: Int, path: String, exitStatus: Int32, artifact: Artifact) {
        self.index = index
        self.path = path
        self.exitStatus = exitStatus
        self.artifact = artifact
    }

    /// Reads the artifact a loop wrote at `path`.
    package static func read(index: Int, path: String, exitStatus: Int32) -> SoakLoop {
        guard let data = FileManager.default.contents(atPath: path) else {
            return SoakLoop(index: index, path: path, exitStatus: exitStatus, artifact: .missing)
        }
        guard let json = try? JSONValue.parse(data), json.objectValue != nil else {
            return SoakLoop(index: index, path: path, exitStatus: exitStatus, artifact: .undecodable)
        }
        return SoakLoop(index: index, path: path, exitStatus: exitStatus, artifact: .decoded(json))
    }

    /// The artifact's status; `artifact_decode_error` for an undecodable one, `nil` when missing.
    var status: String? {
        switch artifact {
        case .missing: nil
        case .undecodable: "artifact_decode_error"
        case .decoded(let json): json["status"]?.stringValue ?? ""
        }
    }

    func int(_ key: String) -> Int {
        switch artifact {
        case .missing: 0
        case .undecodable: key == "error_count" ? 1 : 0
        case .decoded(let json): json.artifactInt(key)
        }
    }

    func double(_ key: String) -> Double? {
        guard case .decoded(let json) = artifact else { return nil }
        return json[key]?.doubleValue ?? json[key]?.intValue.map(Double.init)
    }

    var firstError: String? {
        switch artifact {
        case .missing: nil
        case .undecodable: "\(path): artifact could not be decoded"
        case .decoded(let json): json["first_error"]?.stringValue
        }
    }

    var timeline: [LatencyBucket] {
        guard case .decoded(let json) = artifact, let buckets = json["latency_timeline"]?.arrayValue else { return [] }
        return buckets.compactMap(LatencyBucket.init(json:))
    }
}

/// The soak summary (§9.3) and its gate.
package struct SoakSummary: Sendable {
    package let expectedLoops: Int
    package let loops: [SoakLoop]
    package let thresholds: SoakThresholds

    package init(expectedLoops: Int, loops: [SoakLoop], thresholds: SoakThresholds) {
        self.expectedLoops = expectedLoops
        self.loops = loops
        self.thresholds = thresholds
    }

    package var artifactLoops: Int { loops.filter { $0.status != nil }.count }
    package var okLoops: Int { loops.filter { $0.status == "ok" }.count }
    package var statusFailures: Int { loops.filter { $0.status != nil && $0.status != "ok" }.count }
    package var missingArtifacts: [String] { loops.filter { $0.status == nil }.map(\.path) }
    package var loadScriptFailures: Int { loops.filter { $0.exitStatus != 0 }.count }
    package var failingLoops: Int { max(statusFailures + missingArtifacts.count, loadScriptFailures) }
    package var totalSamples: Int { loops.reduce(0) { $0 + $1.int("sample_count") } }
    package var maxP95Micros: Int { loops.map { $0.int("p95_latency_us") }.max() ?? 0 }
    package var maxP95Milliseconds: Int { loops.map { $0.int("p95_latency_ms") }.max() ?? 0 }
    package var totalErrors: Int { loops.reduce(0) { $0 + $1.int("error_count") } }
    package var totalOutboundSendFailures: Int { loops.reduce(0) { $0 + $1.int("outbound_send_failures") } }
    package var totalSlowConsumerDisconnects: Int { loops.reduce(0) { $0 + $1.int("slow_consumer_disconnects") } }
    package var totalWSAuthFailures: Int { loops.reduce(0) { $0 + $1.int("ws_auth_failures") } }
    package var firstError: String? { loops.lazy.compactMap(\.firstError).first }

    /// Why the soak failed; empty means it passed.
    package var gateFailures: [String] {
        var failures: [String] = []
        if failingLoops > thresholds.maxFailingLoops {
            failures.append("failing_loops \(failingLoops) exceeds \(thresholds.maxFailingLoops)")
        }
        var microsFailed = false
        if let gate = thresholds.maxP95Micros, maxP95Micros > gate {
            failures.append("max_p95_latency_us \(maxP95Micros) exceeds \(gate)")
            microsFailed = true
        }
        if !microsFailed, let gate = thresholds.maxP95Milliseconds, maxP95Milliseconds > gate {
            failures.append("max_p95_latency_ms \(maxP95Milliseconds) exceeds \(gate)")
        }
        let totals: [(String, Int, Int)] = [
            ("total_errors", totalErrors, thresholds.maxTotalErrors),
            ("total_outbound_send_failures", totalOutboundSendFailures, thresholds.maxTotalOutboundSendFailures),
            ("total_slow_consumer_disconnects", totalSlowConsumerDisconnects, thresholds.maxTotalSlowConsumerDisconnects),
            ("total_ws_auth_failures", totalWSAuthFailures, thresholds.maxTotalWSAuthFailures),
        ]
        for (name, value, maximum) in totals where value > maximum {
            failures.append("\(name) \(value) exceeds \(maximum)")
        }
        if totalSamples < thresholds.minTotalSamples {
            failures.append("total_samples \(totalSamples) is below the minimum \(thresholds.minTotalSamples)")
        }
        return failures
    }

    package var passed: Bool { gateFailures.isEmpty }

    /// The loops' timelines laid end to end (each loop starts where the previous one ended).
    package var timeline: [LatencyBucket] {
        var offset = 0
        var joined: [LatencyBucket] = []
        for loop in loops {
            let buckets = loop.timeline
            joined += buckets.map { $0.shifted(by: offset) }
            offset += max((buckets.last?.second ?? -1) + 1, Int((loop.double("duration_seconds") ?? 0).rounded(.up)))
        }
        return joined
    }

    /// The summary JSON: §9.3's fields in order, then ours.
    package func json(reportPath: String?) -> ArtifactJSON {
        let relayCPU = loops.compactMap { $0.double("relay_cpu_seconds") }
        let harnessCPU = loops.compactMap { $0.double("harness_cpu_seconds") }
        return .object([
            ("status", .string(passed ? "ok" : "failed")),
            ("expected_loops", .int(expectedLoops)),
            ("artifact_loops", .int(artifactLoops)),
            ("ok_loops", .int(okLoops)),
            ("status_failures", .int(statusFailures)),
            ("missing_artifacts", .array(missingArtifacts.map { .string($0) })),
            ("load_script_failures", .int(loadScriptFailures)),
            ("failing_loops", .int(failingLoops)),
            ("total_samples", .int(totalSamples)),
            ("max_p95_latency_us", .int(maxP95Micros)),
            ("max_p95_latency_ms", .int(maxP95Milliseconds)),
            ("total_errors", .int(totalErrors)),
            ("total_outbound_send_failures", .int(totalOutboundSendFailures)),
            ("total_slow_consumer_disconnects", .int(totalSlowConsumerDisconnects)),
            ("total_ws_auth_failures", .int(totalWSAuthFailures)),
            ("first_error", .string(firstError)),
            ("gate", thresholds.json),
            ("gate_failures", .array(gateFailures.map { .string($0) })),
            // Ours, after the reference fields.
            ("machine_cores", .int(MachineFacts.cores)),
            ("relay_cpu_seconds", relayCPU.isEmpty ? .null : .number(relayCPU.reduce(0, +))),
            ("relay_peak_memory_bytes", .optionalInt(loops.map { $0.int("relay_peak_memory_bytes") }.max())),
            ("harness_cpu_seconds", harnessCPU.isEmpty ? .null : .number(harnessCPU.reduce(0, +))),
            ("report_html", .string(reportPath)),
            ("loops", .array(loops.map { loop in
                .object([
                    ("loop", .int(loop.index)), ("path", .string(loop.path)), ("exit_status", .int(Int(loop.exitStatus))),
                    ("status", .string(loop.status)), ("sample_count", .int(loop.int("sample_count"))),
                    ("p50_latency_us", .int(loop.int("p50_latency_us"))), ("p95_latency_us", .int(loop.int("p95_latency_us"))),
                    ("p99_latency_us", .int(loop.int("p99_latency_us"))), ("max_latency_us", .int(loop.int("max_latency_us"))),
                    ("error_count", .int(loop.int("error_count"))),
                ])
            })),
        ])
    }
}

// The release gate of PROTOCOL §9.2: thresholds from RELAY_GATE_*, the same checks, PASS or FAILED.

import Foundation
import RelayTestClient

/// The gate's thresholds (§9.2), with the reference defaults.
package struct GateThresholds: Sendable, Equatable {
    /// Required `status`; `nil` disables the check (`RELAY_GATE_REQUIRE_STATUS` set but empty).
    package var requireStatus: String? = "ok"
    package var maxP95Micros: Int?
    /// `nil`: the artifact's `p95_latency_budget_ms` when > 0, else its own p95 (always passes).
    package var maxP95Milliseconds: Int?
    package var maxErrors = 0
    package var maxOutboundSendFailures = 0
    package var maxSlowConsumerDisconnects = 0
    package var maxWSAuthFailures = 0
    package var minSampleCount = 1

    package init() {}

    /// Reads `RELAY_GATE_*`; a malformed number is an error, not a silently disabled check.
    package init(environment: HarnessEnvironment) throws {
        if environment.values["RELAY_GATE_REQUIRE_STATUS"] != nil {
            requireStatus = environment.string("RELAY_GATE_REQUIRE_STATUS")
        }
        maxP95Micros = try environment.threshold("RELAY_GATE_MAX_P95_US")
        maxP95Milliseconds = try environment.threshold("RELAY_GATE_MAX_P95_MS")
        maxErrors = try environment.threshold("RELAY_GATE_MAX_ERRORS", default: 0)
        maxOutboundSendFailures = try environment.threshold("RELAY_GATE_MAX_OUTBOUND_SEND_FAILURES", default: 0)
        maxSlowConsumerDisconnects = try environment.threshold("RELAY_GATE_MAX_SLOW_CONSUMER_DISCONNECTS", default: 0)
        maxWSAuthFailures = try environment.threshold("RELAY_GATE_MAX_WS_AUTH_FAILURES", default: 0)
        minSampleCount = try environment.threshold("RELAY_GATE_MIN_SAMPLE_COUNT", default: 1)
    }
}

/// The gate's verdict on one artifact.
package struct GateDecision: Sendable, Equatable {
    /// Why it failed; empty means PASS.
    package let failures: [String]
    /// The headline figures, one line, for the log.
    package let summaryLine: String
    package var passed: Bool { failures.isEmpty }

    /// What the command prints.
    package var report: String {
        passed ? "\(summaryLine)\nPASS" : "\(summaryLine)\nFAILED\n" + failures.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// §9.2's checks.
package enum Gate {
    /// Decides on a load artifact (any mode's: they share the §9.1 fields). Missing numbers count as 0.
    package static func evaluate(_ artifact: JSONValue, thresholds: GateThresholds) -> GateDecision {
        func int(_ key: String) -> Int { artifact.artifactInt(key) }
        let status = artifact["status"]?.stringValue ?? ""
        let samples = int("sample_count")
        let p95Micros = int("p95_latency_us")
        let p95Milliseconds = int("p95_latency_ms")
        let budget = int("p95_latency_budget_ms")
        let msGate = thresholds.maxP95Milliseconds ?? (budget > 0 ? budget : p95Milliseconds)
        var failures: [String] = []
        if let required = thresholds.requireStatus, status != required {
            failures.append("status is '\(status)', required '\(required)'")
        }
        if samples < thresholds.minSampleCount {
            failures.append("sample_count \(samples) is below the minimum \(thresholds.minSampleCount)")
        }
        if let usGate = thresholds.maxP95Micros, p95Micros > usGate {
            failures.append("p95_latency_us \(p95Micros) exceeds \(usGate)")
        } else if p95Milliseconds > msGate {
            failures.append("p95_latency_ms \(p95Milliseconds) exceeds \(msGate)")
        }
        let counted: [(String, Int)] = [
            ("error_count", thresholds.maxErrors),
            ("outbound_send_failures", thresholds.maxOutboundSendFailures),
            ("slow_consumer_disconnects", thresholds.maxSlowConsumerDisconnects),
            ("ws_auth_failures", thresholds.maxWSAuthFailures),
        ]
        for (key, maximum) in counted where int(key) > maximum {
            failures.append("\(key) \(int(key)) exceeds \(maximum)")
        }
        if !failures.isEmpty, let firstError = artifact["first_error"]?.stringValue {
            failures.append("first_error: \(firstError)")
        }
        let line = "relay gate: status=\(status) sample_count=\(samples) p95=\(p95Milliseconds) ms (\(p95Micros) us, gate "
            + (thresholds.maxP95Micros.map { "\($0) us" } ?? "\(msGate) ms")
            + ") errors=\(int("error_count")) outbound_send_failures=\(int("outbound_send_failures"))"
            + " slow_consumer_disconnects=\(int("slow_consumer_disconnects")) ws_auth_failures=\(int("ws_auth_failures"))"
        return GateDecision(failures: failures, summaryLine: line)
    }

    /// Reads and decides on the artifact at `path`; a missing or undecodable file fails the gate.
    package static func evaluate(path: String, thresholds: GateThresholds) -> GateDecision {
        guard let data = FileManager.default.contents(atPath: path) else {
            return GateDecision(failures: ["no load artifact at \(path); run the load first"], summaryLine: "relay gate: \(path)")
        }
        guard let artifact = try? JSONValue.parse(data), artifact.objectValue != nil else {
            return GateDecision(failures: ["\(path) is not a JSON object"], summaryLine: "relay gate: \(path)")
        }
        return evaluate(artifact, thresholds: thresholds)
    }
}

extension JSONValue {
    /// An artifact's number as an integer (a fractional one truncated); missing counts as 0, as
    /// §9.1 reads metrics and the gate and the soak read artifacts.
    func artifactInt(_ key: String) -> Int {
        self[key]?.intValue ?? self[key]?.doubleValue.map { Int($0) } ?? 0
    }
}

// What one probe found: each step's outcome and time, as text for a person or JSON for a machine.

import Foundation
import RelayClient

/// One step of a probe.
struct StepResult: Sendable {
    /// The step's name (`pair_start`, `join`, …).
    let name: String
    /// How long it took.
    let duration: Duration
    /// Why it failed; `nil` when it worked.
    let error: String?

    var succeeded: Bool { error == nil }
    var milliseconds: Double { Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15 }
}

/// A whole probe of one relay.
struct ProbeResult: Sendable {
    let relayURL: String
    let startedAt: Date
    let steps: [StepResult]
    /// Steps that never ran because an earlier one failed.
    let skipped: [String]

    var succeeded: Bool { skipped.isEmpty && steps.allSatisfy(\.succeeded) }
    var failedStep: StepResult? { steps.first { !$0.succeeded } }
    var duration: Duration { steps.reduce(.zero) { $0 + $1.duration } }
    var milliseconds: Double { steps.reduce(0) { $0 + $1.milliseconds } }

    /// A report for a terminal: one line per step, then the verdict.
    var text: String {
        var lines = ["relay-probe \(relayURL) at \(RelayProbeFormat.timestamp(startedAt))"]
        for step in steps {
            let outcome = step.succeeded ? "ok  " : "FAIL"
            lines.append("  \(outcome) \(step.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(RelayProbeFormat.millis(step.milliseconds))"
                + (step.error.map { "  \($0)" } ?? ""))
        }
        for name in skipped { lines.append("  skip \(name)") }
        if let failed = failedStep {
            lines.append("FAIL: step \(failed.name) failed (\(steps.count - 1) of \(steps.count + skipped.count) steps worked): \(failed.error ?? "")")
        } else {
            lines.append("PASS: \(steps.count) steps in \(RelayProbeFormat.millis(milliseconds))")
        }
        return lines.joined(separator: "\n")
    }

    /// The same as one JSON object (one line).
    var json: String {
        var object: [String: JSONValue] = [
            "relay": .string(relayURL),
            "startedAt": .string(RelayProbeFormat.timestamp(startedAt)),
            "ok": .bool(succeeded),
            "durationMillis": .double(milliseconds),
            "steps": .array(steps.map { step in
                var members: [String: JSONValue] = [
                    "name": .string(step.name), "ok": .bool(step.succeeded), "durationMillis": .double(step.milliseconds),
                ]
                if let error = step.error { members["error"] = .string(error) }
                return .object(members)
            }),
            "skipped": .array(skipped.map(JSONValue.string)),
        ]
        if let failed = failedStep {
            object["failedStep"] = .string(failed.name)
            object["error"] = .string(failed.error ?? "")
        }
        return JSONValue.object(object).serialized
    }
}

/// Number and time formats of the reports.
enum RelayProbeFormat {
    static func millis(_ value: Double) -> String { String(format: "%.1f ms", value) }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

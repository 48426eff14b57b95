// The probe's own Prometheus metrics, for a blackbox-style check of a deployment.

import Foundation
import Prometheus

/// What `--every` exports on `/metrics`: the last run's verdict and step times, and counts of runs
/// and failed steps.
final class ProbeMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let success: Gauge
    private let duration: Gauge
    private let lastRun: Gauge
    private let runs: (succeeded: Counter, failed: Counter)
    private let stepDurations: [String: Gauge]
    private let stepFailures: [String: Counter]

    /// `relay_probe_<name>_<unit>` with its HELP text.
    private static func name(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "relay", subsystem: "probe", metricName: name, unitName: unit, helpText: help)
    }

    init() {
        success = registry.makeGauge(descriptor: Self.name("success", "", "1 if the last probe passed every step, 0 if a step failed."))
        duration = registry.makeGauge(descriptor: Self.name("duration", "seconds", "How long the last probe took, all steps."))
        lastRun = registry.makeGauge(descriptor: Self.name("last_run_timestamp", "seconds", "When the last probe started (Unix time)."))
        let runsName = Self.name("runs", "total", "Probes run, by outcome.")
        runs = (
            registry.makeCounter(descriptor: runsName, labels: [("outcome", "success")]),
            registry.makeCounter(descriptor: runsName, labels: [("outcome", "failure")])
        )
        let stepName = Self.name("step_duration", "seconds", "How long each step of the last probe took (a step that did not run keeps its last value).")
        let failureName = Self.name("step_failures", "total", "Probes that failed, by the step that failed.")
        var durations: [String: Gauge] = [:], failures: [String: Counter] = [:]
        for step in Probe.allStepNames {
            durations[step] = registry.makeGauge(descriptor: stepName, labels: [("step", step)])
            failures[step] = registry.makeCounter(descriptor: failureName, labels: [("step", step)])
        }
        stepDurations = durations
        stepFailures = failures
    }

    func record(_ result: ProbeResult) {
        success.set(to: result.succeeded ? 1 : 0)
        duration.set(to: result.milliseconds / 1000)
        lastRun.set(to: result.startedAt.timeIntervalSince1970)
        (result.succeeded ? runs.succeeded : runs.failed).increment()
        for step in result.steps { stepDurations[step.name]?.set(to: step.milliseconds / 1000) }
        if let failed = result.failedStep { stepFailures[failed.name]?.increment() }
    }

    /// The text exposition format.
    var exposition: String { registry.emitToString() }
}

// Runs the soak's loops as separate load runs (§9.3 runs the load script per loop, so a crash in
// one loop is a counted failure, not the end of the soak).

import Foundation

/// The §9.3 soak runner.
package enum SoakRunner {
    /// Runs `relay-load load` `loops` times (this executable, inheriting the environment), each
    /// writing `<directory>/loop-<i>.json` (an old file is deleted first), and aggregates.
    package static func run(loops: Int, directory: String, thresholds: SoakThresholds) async -> SoakSummary {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var results: [SoakLoop] = []
        for index in 1...loops {
            let path = URL(fileURLWithPath: directory).appendingPathComponent("loop-\(index).json").path
            try? FileManager.default.removeItem(atPath: path)
            harnessLog("[soak] loop \(index)/\(loops) → \(path)")
            var environment = ProcessInfo.processInfo.environment
            environment["RELAY_LOAD_RESULTS_PATH"] = path
            let status = await runSelf(arguments: ["load"], environment: environment)
            let loop = SoakLoop.read(index: index, path: path, exitStatus: status)
            harnessLog("[soak] loop \(index)/\(loops): exit \(status), status \(loop.status ?? "missing")")
            results.append(loop)
        }
        return SoakSummary(expectedLoops: loops, loops: results, thresholds: thresholds)
    }

    /// `relay-soak-summary.json` → `relay-soak-summary.html`.
    package static func reportPath(forSummary path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingPathExtension().appendingPathExtension("html").path
    }

    /// The HTML report of a soak.
    package static func report(_ summary: SoakSummary) -> HTMLReport {
        let rows = summary.loops.map { loop in
            HTMLReport.Row(
                label: "loop \(loop.index) (\(loop.status ?? "missing"))", count: loop.int("sample_count"),
                p50: loop.int("p50_latency_us"), p95: loop.int("p95_latency_us"), p99: loop.int("p99_latency_us"),
                max: loop.int("max_latency_us"))
        }
        var facts: [(String, String)] = [
            ("loops", "\(summary.okLoops) ok of \(summary.expectedLoops)"),
            ("samples", "\(summary.totalSamples)"),
            ("max p95", String(format: "%.2f ms", Double(summary.maxP95Micros) / 1000)),
            ("errors", "\(summary.totalErrors)"),
            ("outbound send failures", "\(summary.totalOutboundSendFailures)"),
            ("slow consumer disconnects", "\(summary.totalSlowConsumerDisconnects)"),
            ("ws auth failures", "\(summary.totalWSAuthFailures)"),
            ("machine cores", "\(MachineFacts.cores)"),
        ]
        if let first = summary.firstError { facts.append(("first error", first)) }
        return HTMLReport(
            title: "Relay soak", passed: summary.passed, facts: facts, failures: summary.gateFailures,
            timeline: summary.timeline, rows: rows)
    }

    /// Runs this executable with `arguments`, stdout and stderr inherited, and returns its exit
    /// status (127 when it cannot start).
    static func runSelf(arguments: [String], environment: [String: String]) async -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        process.environment = environment
        return await withCheckedContinuation { continuation in
            process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
            do {
                try process.run()
            } catch {
                harnessLog("[soak] could not start \(process.executableURL?.path ?? "relay-load"): \(error)")
                process.terminationHandler = nil
                continuation.resume(returning: 127)
            }
        }
    }
}

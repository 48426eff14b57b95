import Foundation
import RelayTestClient
import RelayLocalCluster
import RelayTestSupport
import Testing

@testable import RelayLoadKit

/// Short real runs: the harness against a real local relay process, and the `relay-load`
/// command's exit codes and files, as the Makefile and release tooling use them.
@Suite("Harness runs against a local relay", .timeLimit(.minutes(3)))
struct LoadRunTests {
    static var relayLoadExecutable: String {
        URL(fileURLWithPath: try! LocalRelayNode.defaultExecutable()).deletingLastPathComponent().appendingPathComponent("relay-load").path
    }

    static func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("relay-load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Runs `relay-load` with `environment` (plus PATH) and returns its exit status and stdout.
    static func relayLoad(_ arguments: [String], environment: [String: String]) async throws -> (Int32, String) {
        var full = environment
        full["PATH"] = ProcessInfo.processInfo.environment["PATH"]
        full["RELAY_LOAD_PROGRESS"] = "0"
        let child = try ChildProcess.launch(executable: relayLoadExecutable, arguments: arguments, environment: full)
        let status = try await child.waitForExit(timeout: .seconds(120))
        return (status, child.standardOutput)
    }

    @Test func sessionLoadAgainstALocalRelayMeetsEverySection91Assertion() async throws {
        var configuration = SessionLoadConfiguration()
        configuration.sessions = 4
        configuration.messagesPerSession = 5
        configuration.setupConcurrency = 2
        configuration.progress = false
        let relay = try await RelayUnderTest.resolve(baseURL: nil, origin: configuration.origin)
        let result = await SessionLoad.run(configuration, relay: relay)
        await relay.shutdown()

        #expect(result.errors.isEmpty, "\(result.errors)")
        #expect(SessionLoad.assertionFailures(result).isEmpty)
        #expect(result.latency.count == 20)
        #expect(result.latency.p50 > 0 && result.latency.p50 <= result.latency.max)
        #expect(result.counters == RelayCounters())
        // The local relay is a separate process: its CPU and memory are measured.
        #expect(result.usage?.relayCPUSeconds.map { $0 > 0 } == true)
        #expect((result.usage?.relayPeakMemoryBytes ?? 0) > 1_000_000)
        #expect(result.usage?.machineCores == MachineFacts.cores)
        #expect(result.timeline.reduce(0) { $0 + $1.count } == 20)
        let artifact = try JSONValue.parse(result.json.pretty)
        #expect(Gate.evaluate(artifact, thresholds: GateThresholds()).passed)
    }

    @Test func gateCommandExitsZeroOneOrTwo() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = directory.appendingPathComponent("good.json").path
        let result = LoadResult(
            mode: "load", baseURL: "http://127.0.0.1:1", origin: "http://localhost:4173", sessions: 1, messagesPerSession: 2,
            latency: LatencySummary(samples: [800, 900]), p95BudgetMilliseconds: 1000)
        try result.json.write(to: good)

        let (passed, output) = try await Self.relayLoad(["gate"], environment: ["RELAY_GATE_RESULTS_PATH": good])
        #expect(passed == 0)
        #expect(output.contains("PASS"))
        let (tooSlow, slowOutput) = try await Self.relayLoad(["gate"], environment: ["RELAY_GATE_RESULTS_PATH": good, "RELAY_GATE_MAX_P95_US": "850"])
        #expect(tooSlow == 1)
        #expect(slowOutput.contains("FAILED") && slowOutput.contains("p95_latency_us 900 exceeds 850"))
        let (missing, _) = try await Self.relayLoad(["gate"], environment: ["RELAY_GATE_RESULTS_PATH": directory.appendingPathComponent("none.json").path])
        #expect(missing == 1)
        let (misconfigured, _) = try await Self.relayLoad(["gate"], environment: ["RELAY_GATE_RESULTS_PATH": good, "RELAY_GATE_MAX_ERRORS": "zero"])
        #expect(misconfigured == 2)
    }

    @Test func soakCommandRunsLoopsAndWritesTheSummaryAndTheReport() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let summaryPath = directory.appendingPathComponent("relay-soak-summary.json").path
        let (status, output) = try await Self.relayLoad(["soak"], environment: [
            "RELAY_SOAK_LOOPS": "2", "RELAY_SOAK_RESULTS_DIR": directory.appendingPathComponent("runs").path,
            "RELAY_SOAK_SUMMARY_PATH": summaryPath, "RELAY_LOAD_SESSIONS": "2", "RELAY_LOAD_MESSAGES_PER_SESSION": "3",
            "RELAY_BINARY": try LocalRelayNode.defaultExecutable(),
        ])
        #expect(status == 0, "\(output)")
        let summary = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: summaryPath)))
        #expect(summary["status"]?.stringValue == "ok")
        #expect(summary["expected_loops"]?.intValue == 2)
        #expect(summary["ok_loops"]?.intValue == 2)
        #expect(summary["total_samples"]?.intValue == 12)
        #expect(summary["failing_loops"]?.intValue == 0)
        let html = try String(contentsOfFile: directory.appendingPathComponent("relay-soak-summary.html").path, encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("loop 2"))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("runs/loop-1.json").path))

        let (rejected, _) = try await Self.relayLoad(["soak"], environment: ["RELAY_SOAK_LOOPS": "0", "RELAY_SOAK_SUMMARY_PATH": summaryPath])
        #expect(rejected == 2)
    }
}

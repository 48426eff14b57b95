import Foundation
import RelayLocalCluster
import RelayTestClient
import RelayTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `relay-probe`, the built executable, against real relays: a TLS node, a three-node cluster, a
/// node lost mid-probe, and the `--every` mode's metrics.
@Suite("relay-probe", .serialized, .timeLimit(.minutes(3)))
struct ProbeTests {
    static func launchProbe(_ arguments: [String]) throws -> ChildProcess {
        try ChildProcess.launch(
            executable: try LocalRelayNode.siblingExecutable(named: "relay-probe", overriddenBy: "RELAY_PROBE_BINARY"),
            arguments: arguments, environment: nil)
    }

    /// The one JSON report a `--json` run printed.
    static func report(_ probe: ChildProcess) throws -> JSONValue {
        let output = probe.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let report = try? JSONValue.parse(output) else { throw TestFailure("no JSON report: \(output) \(probe.standardError)") }
        return report
    }

    static func expectAllStepsPassed(_ report: JSONValue, endToEnd: Bool = false) {
        #expect(report["ok"]?.boolValue == true, "\(report)")
        let steps = report["steps"]?.arrayValue ?? []
        #expect(steps.compactMap { $0["name"]?.stringValue } == [
            "pair_start", "desktop_connect", "join", "phone_connect",
        ] + (endToEnd ? ["secure"] : []) + ["command", "event", "rotate", "revoke", "stop"])
        #expect(steps.allSatisfy { $0["ok"]?.boolValue == true })
    }

    @Test func passesAgainstARelayServingTLS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let (certificate, key) = try await certificates.makeServerCertificate()
        let node = try await TLSTests.launchRelay(
            certificate: certificate, key: key, trust: try RelayTLS.certificateAuthorities(pemFile: certificates.caFile))
        defer { node.process.terminateIfRunning() }

        let probe = try Self.launchProbe(["--json", "--ca-file", certificates.caFile, node.baseURL])
        #expect(try await probe.waitForExit(timeout: .seconds(60)) == 0, "\(probe.standardOutput) \(probe.standardError)")
        Self.expectAllStepsPassed(try Self.report(probe))

        // Without the CA the first step fails, and says it was TLS.
        let untrusting = try Self.launchProbe(["--json", node.baseURL])
        #expect(try await untrusting.waitForExit(timeout: .seconds(60)) == 1)
        let failed = try Self.report(untrusting)
        #expect(failed["failedStep"]?.stringValue == "pair_start")
        #expect(failed["error"]?.stringValue?.contains("TLS") == true, "\(failed)")
    }

    @Test func passesAcrossAThreeNodeCluster() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let probe = try Self.launchProbe([
                "--json", "--origin", allowedOrigin, "--phone-relay-url", cluster.baseURL(1), cluster.baseURL(0),
            ])
            #expect(try await probe.waitForExit(timeout: .seconds(60)) == 0, "\(probe.standardOutput) \(probe.standardError)")
            Self.expectAllStepsPassed(try Self.report(probe))
        }
    }

    /// `--e2e` (extension 12): the encrypted path across nodes, then a relay that refuses it.
    @Test func checksTheEndToEndPathAcrossNodesAndFailsWhereTheRelayTurnedItOff() async throws {
        try await withRelayCluster(count: 2) { cluster in
            let probe = try Self.launchProbe([
                "--json", "--e2e", "--origin", allowedOrigin, "--phone-relay-url", cluster.baseURL(1), cluster.baseURL(0),
            ])
            #expect(try await probe.waitForExit(timeout: .seconds(60)) == 0, "\(probe.standardOutput) \(probe.standardError)")
            Self.expectAllStepsPassed(try Self.report(probe), endToEnd: true)
        }
        try await withRelay({ $0["E2E_MODE"] = "off" }) { relay in
            let probe = try Self.launchProbe(["--e2e", "--timeout", "3", "--origin", allowedOrigin, relay.baseURL])
            #expect(try await probe.waitForExit(timeout: .seconds(60)) == 1)
            #expect(probe.standardOutput.contains("FAIL: step secure failed"), "\(probe.standardOutput)")
        }
    }

    @Test func namesTheStepThatFailsWhenANodeStopsMidProbe() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let probe = try Self.launchProbe([
                "--origin", allowedOrigin, "--phone-relay-url", cluster.baseURL(1), "--pause-ms", "1500", "--timeout", "5",
                cluster.baseURL(0),
            ])
            // The phone is connected to node 1: take node 1 away before the command goes out.
            #expect(await eventually { probe.standardError.contains("step phone_connect ok") || !probe.isRunning })
            try await cluster.kill(1)
            #expect(try await probe.waitForExit(timeout: .seconds(60)) == 1)
            let report = probe.standardOutput
            #expect(report.contains("FAIL: step command failed"), "\(report)")
            #expect(report.contains("skip stop"))
        }
    }

    @Test func everyProbesUntilStoppedAndServesItsMetrics() async throws {
        try await withRelay { relay in
            let port = try freeLoopbackPort()
            let probe = try Self.launchProbe([
                "--every", "1", "--json", "--origin", allowedOrigin, "--metrics-host", "127.0.0.1", "--metrics-port", "\(port)",
                relay.baseURL,
            ])
            defer { probe.terminateIfRunning() }
            let metrics = RelayHTTPClient(baseURL: "http://127.0.0.1:\(port)")
            var text = ""
            let counted = await eventually {
                text = (try? await metrics.get("/metrics", timeout: .seconds(2)))?.bodyText ?? ""
                return text.contains(#"relay_probe_runs_total{outcome="success"} 2"#)
            }
            #expect(counted, "\(text) \(probe.standardError)")
            #expect(text.contains("relay_probe_success 1"))
            #expect(text.contains(#"relay_probe_step_duration_seconds{step="rotate"}"#))
            #expect(text.contains("# HELP relay_probe_success"))
            probe.send(SIGTERM)
            #expect(try await probe.waitForExit(timeout: .seconds(30)) == 0)
            let reports = probe.standardOutput.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
            #expect(reports.count >= 2 && reports.allSatisfy { $0["ok"]?.boolValue == true })
        }
    }
}

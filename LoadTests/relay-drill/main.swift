// relay-drill: rehearses a failover drill of Runbooks/failover.md against a local cluster it
// starts (three relay nodes, Redis, NATS, all on loopback) and prints what it observed.
// Exit status: 0 every check held, 1 a check failed or the cluster could not be set up.

import ArgumentParser
import Foundation
import RelayDrills
import RelayLoadKit

@main
struct RelayDrill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-drill",
        abstract: "Rehearses a failover drill against a local loopback cluster and prints what it observed.",
        discussion: """
            Drills: \(Drill.allCases.map(\.rawValue).joined(separator: ", ")). Configuration: RELAY_DRILL_NODES, \
            RELAY_DRILL_SESSIONS, RELAY_DRILL_WARMUP_S, RELAY_DRILL_OUTAGE_S, RELAY_DRILL_RECOVERY_TIMEOUT_S, \
            RELAY_DRILL_DRAIN_PERIOD_MS, RELAY_DRILL_OUTPUT_DIR (see LoadTests/README.md).
            """)

    @Argument(help: ArgumentHelp("The drill.", valueName: Drill.allCases.map(\.rawValue).joined(separator: "|")))
    var drill: Drill

    func run() async throws {
        let configuration = DrillConfiguration(environment: HarnessEnvironment(ProcessInfo.processInfo.environment))
        say("drill \(drill.rawValue): \(configuration.nodes) nodes, \(configuration.sessions) sessions, outage \(configuration.outage)")
        let report: DrillReport
        do {
            report = try await DrillRunner.run(drill, configuration)
        } catch {
            say("drill \(drill.rawValue): could not set up the cluster: \(error)")
            throw ExitCode(1)
        }
        if let directory = configuration.outputDirectory {
            let path = "\(directory)/drill-\(drill.rawValue).json"
            do {
                try report.json.write(to: path)
                say("artifact: \(path)")
            } catch {
                say("relay-drill: could not write \(path): \(error)")
            }
        }
        let failed = report.checks.filter { !$0.passed }
        say("drill \(drill.rawValue): \(report.passed ? "PASS" : "FAIL") (\(report.checks.count - failed.count) of \(report.checks.count) checks held)")
        if !report.passed { throw ExitCode(1) }
    }
}

extension Drill: ExpressibleByArgument {}

/// One line on standard output, unbuffered like the drill's observations.
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

// relay-drill: rehearses a failover drill of Runbooks/failover.md against a local cluster it
// starts (three relay nodes, Redis, NATS, all on loopback) and prints what it observed.
// Exit status: 0 every check held, 1 a check failed or the cluster could not be set up, 2 a
// malformed RELAY_DRILL_* variable.

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
            RELAY_DRILL_DRAIN_PERIOD_MS, RELAY_DRILL_OUTPUT_DIR; redis-failover also RELAY_DRILL_SENTINEL_DOWN_AFTER_MS, \
            RELAY_DRILL_REPLICA_HOLD_MS, RELAY_DRILL_MIN_REPLICAS_ACK, RELAY_DRILL_PAIRING_STREAMS, RELAY_DRILL_ROTATING_PHONES, \
            RELAY_DRILL_AFTER_FAILOVER_S (see LoadTests/README.md). Exit status: 0 every check held, 1 a check failed, \
            2 a malformed variable.
            """)

    @Argument(help: ArgumentHelp("The drill.", valueName: Drill.allCases.map(\.rawValue).joined(separator: "|")))
    var drill: Drill

    func run() async throws {
        let configuration: DrillConfiguration
        do {
            configuration = try DrillConfiguration(environment: HarnessEnvironment(ProcessInfo.processInfo.environment))
        } catch {
            say("relay-drill: \(error)")
            throw ExitCode(2)
        }
        if drill == .redisFailover {
            say(
                "drill \(drill.rawValue): \(configuration.nodes) nodes, \(configuration.sessions) sessions, REDIS_MIN_REPLICAS_ACK "
                    + "\(configuration.minReplicasAckSettings.map(String.init).joined(separator: " then ")), Sentinel down-after "
                    + "\(configuration.sentinelDownAfterMilliseconds) ms, replicas cut off \(configuration.replicaHoldMilliseconds) ms before the kill")
        } else {
            say("drill \(drill.rawValue): \(configuration.nodes) nodes, \(configuration.sessions) sessions, outage \(configuration.outage)")
        }
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

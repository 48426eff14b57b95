import RelayDrills
import RelayTestSupport
import Testing

/// Each failover drill, shortened, against a real local cluster (relay processes, redis-server,
/// nats-server): what `make drill-*` rehearses must keep holding.
@Suite("Failover drills", .serialized)
struct DrillTests {
    static func configuration() throws -> DrillConfiguration {
        var configuration = DrillConfiguration()
        configuration.sessions = 6
        configuration.warmup = .seconds(2)
        configuration.outage = .seconds(3)
        configuration.echo = false
        configuration.outputDirectory = nil
        configuration.redisExecutable = try TestServices.redisServer()
        configuration.natsExecutable = try TestServices.natsServer()
        return configuration
    }

    static func run(_ drill: Drill) async throws -> DrillReport {
        let report = try await DrillRunner.run(drill, configuration())
        let failed = report.checks.filter { !$0.passed }.map { "\($0.name): \($0.detail)" }
        #expect(report.passed, "\(failed)\n\(report.observations.map(\.text).joined(separator: "\n"))")
        return report
    }

    static func names(_ report: DrillReport) -> Set<String> { Set(report.checks.map(\.name)) }

    @Test func nodeLossKeepsEverySession() async throws {
        let report = try await Self.run(.nodeLoss)
        #expect(Self.names(report).contains("every session delivers again without the node"))
        #expect(report.observations.contains { $0.text.hasPrefix("kill -9 node 1") })
    }

    @Test func redisRestartMakesNodesUnreadyAndKeepsSessions() async throws {
        let report = try await Self.run(.redisRestart)
        #expect(Self.names(report).isSuperset(of: [
            "new pairings are refused while Redis is down", "every node reports not ready", "established sockets keep routing",
        ]))
    }

    @Test func natsRestartKeepsSameNodeTrafficAndResumesCrossNode() async throws {
        let report = try await Self.run(.natsRestart)
        #expect(Self.names(report).isSuperset(of: ["every node reports not ready", "established sockets keep routing", "cross-node traffic resumes"]))
    }

    @Test func rollingRestartDrainsEveryNodeWithoutAuthFailures() async throws {
        let report = try await Self.run(.rollingRestart)
        #expect(Self.names(report).isSuperset(of: [
            "every node drains and exits cleanly", "reconnects authenticate with the tokens clients hold",
        ]))
    }
}

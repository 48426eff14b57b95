import RelayDrills
import RelayLoadKit
import RelayLocalCluster
import RelayTestSupport
import Testing

/// Each failover drill, shortened, against a real local cluster (relay processes, redis-server,
/// nats-server): what `make drill-*` rehearses must keep holding.
@Suite("Failover drills", .serialized, .timeLimit(.minutes(3)))
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

    @Test func secretRotationInThreeRolloutsRejectsNothing() async throws {
        let report = try await Self.run(.secretRotation)
        #expect(Self.names(report).contains("no envelope rejected during the rotation"))
    }

    /// The Redis master under Sentinel killed while pairings and rotations stream in, with
    /// REDIS_MIN_REPLICAS_ACK 1 then 0 (shortened: a few seconds of traffic, down-after 1 s):
    /// Sentinel promotes a replica, every node follows, 1 loses nothing acknowledged, and 0 loses
    /// what was acknowledged while the replicas were cut off (the drill's loss count can fail).
    @Test func redisFailoverLosesNothingAcknowledgedWhenAReplicaConfirms() async throws {
        var configuration = try Self.configuration()
        configuration.sessions = 3
        configuration.warmup = .seconds(2)
        configuration.sentinelDownAfterMilliseconds = 1000
        configuration.replicaHoldMilliseconds = 1000
        configuration.pairingStreams = 1
        configuration.rotatingPhones = 2
        configuration.afterFailover = .seconds(1)
        let report = try await DrillRunner.run(.redisFailover, configuration)
        let failed = report.checks.filter { !$0.passed }.map { "\($0.name): \($0.detail)" }
        let story = report.observations.map(\.text).joined(separator: "\n")
        #expect(report.passed, "\(failed)\n\(story)")
        #expect(Self.names(report).isSuperset(of: [
            "Sentinel promotes a replica (REDIS_MIN_REPLICAS_ACK=1)", "every node follows the new master (REDIS_MIN_REPLICAS_ACK=1)",
            "nothing acknowledged is lost (REDIS_MIN_REPLICAS_ACK=1)", "every node follows the new master (REDIS_MIN_REPLICAS_ACK=0)",
        ]))
        guard case .array(let runs)? = report.json["runs"], runs.count == 2 else {
            Issue.record("no runs in the artifact: \(report.json.pretty.prefix(2000))")
            return
        }
        func figure(_ run: ArtifactJSON, _ key: String) -> Int64 {
            if case .int(let value)? = run[key] { value } else { -1 }
        }
        #expect(figure(runs[0], "min_replicas_ack") == 1 && figure(runs[1], "min_replicas_ack") == 0)
        #expect(figure(runs[0], "pairings_acknowledged") > 0 && figure(runs[0], "rotations_acknowledged") > 0, "\(story)")
        #expect(figure(runs[0], "acknowledged_lost") == 0, "\(story)")
        // With 0, writes acknowledged while the replicas were cut off reached the master only.
        #expect(figure(runs[1], "pairings_lost") + figure(runs[1], "rotations_lost") > 0, "\(story)")
    }

    /// The drill's rejection check can fail: changing the signing secret in one step makes the
    /// nodes reject each other's envelopes, which is what the three rollouts avoid.
    @Test func aOneStepSecretChangeIsRejected() async throws {
        let cluster = try await LocalCluster.start(
            nodes: 2, redis: .external(url: try TestServices.redisURL()), nats: .external(url: try TestServices.natsURL()),
            environment: ["ALLOWED_ORIGINS": "http://localhost:4173"], prefix: "relaydrilltest")
        defer { cluster.killAll() }
        var configuration = ClusterTrafficConfiguration(sessions: 2, origin: "http://localhost:4173")
        // The broken session is expected: give up on it quickly.
        configuration.giveUpAfter = .seconds(3)
        configuration.finalRoundTripTimeout = .seconds(3)
        let traffic = try await ClusterTraffic.start(on: cluster, configuration)
        try await cluster.restart(0, overrides: ["NATS_HMAC_SECRET": String(repeating: "n", count: 64)])
        // Clients that fled node 0 while it restarted go home (phones try their home node first):
        // session 1's phone on node 0, its desktop on node 1.
        for index in 0..<traffic.sessionCount { traffic.dropPhone(index) }
        let rejected = try await eventually(timeout: .seconds(15)) {
            var signature = 0.0
            for node in 0..<2 { signature += prometheusSampleValue(try await cluster.prometheus(node), "relay_nats_rejected_total{reason=\"signature\"}") }
            return signature > 0
        }
        #expect(rejected, "neither node rejected an envelope signed with the other secret")
        let tally = await traffic.finish()
        #expect(!tally.gateFailures.isEmpty, "the sessions across the two secrets cannot have gone on talking")
    }
}

// The drills on one Redis and one NATS (redis-failover has its own: RedisFailoverDrill.swift).
// Each starts its own cluster, runs client traffic through the disruption and checks what
// Runbooks/failover.md says happens: sessions survive, acknowledged traffic resumes, readiness
// follows the dependencies, the relay's counters move as the runbook tells the on-call to watch
// them.

import Foundation
import RelayTestClient
import RelayLoadKit
import RelayLocalCluster

/// Runs drills against a local cluster it starts and stops.
package enum DrillRunner {
    /// Runs `drill` and returns what it observed; writes `drill-<name>.json` into the configured
    /// output directory.
    ///
    /// - Throws: only when the cluster cannot be started or traffic cannot be set up; a
    ///   disruption that goes wrong is a failed check in the report.
    package static func run(_ drill: Drill, _ configuration: DrillConfiguration) async throws -> DrillReport {
        // Its own dependencies (a master, two replicas, three Sentinels) and streams of new writes.
        if drill == .redisFailover { return try await RedisFailoverDrill.run(configuration) }
        let report = DrillReport(drill: drill, echo: configuration.echo)
        let cluster = try await LocalCluster.start(
            nodes: configuration.nodes, redis: .local(executable: configuration.redisExecutable, appendOnly: true),
            nats: .local(executable: configuration.natsExecutable), environment: [
                "ALLOWED_ORIGINS": configuration.origin, "MAX_PAIR_REQUESTS_PER_MINUTE": "20000",
                "DRAIN_PERIOD_MS": "\(configuration.drainPeriodMilliseconds)",
            ], prefix: "relaydrill")
        defer { cluster.killAll() }
        report.note(
            "cluster up: \(cluster.count) relay nodes on ports \((0..<cluster.count).map { "\(cluster.port($0))" }.joined(separator: ", ")),"
                + " redis-server (appendonly) on \(cluster.redisServer?.port ?? 0), nats-server on \(cluster.natsServer?.port ?? 0)")

        var trafficConfiguration = ClusterTrafficConfiguration(sessions: configuration.sessions, origin: configuration.origin)
        // Alternate groups: desktop and phone on the same node, then on neighbouring nodes, so both
        // paths (in-process and over NATS) are exercised.
        trafficConfiguration.placement = { index, nodes in
            let desktop = index % nodes
            return (desktop, (index / nodes) % 2 == 1 ? desktop : (desktop + 1) % nodes)
        }
        let traffic = try await ClusterTraffic.start(on: cluster, trafficConfiguration)
        let sameNode = (0..<traffic.sessionCount).filter { traffic.homes(of: $0).desktop == traffic.homes(of: $0).phone }
        report.note(
            "\(traffic.sessionCount) sessions paired (\(sameNode.count) with desktop and phone on one node, "
                + "\(traffic.sessionCount - sameNode.count) across nodes); each phone keeps one command in flight until acknowledged")
        try? await Task.sleep(for: configuration.warmup)
        let before = traffic.counts
        report.note("warm-up: \(before.delivered) commands acknowledged, p99 \(ms(traffic.recorder.summary.p99))")

        let context = Context(cluster: cluster, traffic: traffic, report: report, configuration: configuration, sameNode: Set(sameNode))
        switch drill {
        case .nodeLoss: await context.nodeLoss()
        case .redisRestart: await context.redisRestart()
        case .natsRestart: await context.natsRestart()
        case .rollingRestart: await context.rollingRestart()
        case .secretRotation: await context.secretRotation()
        case .redisFailover: break  // run above
        }

        let final = await traffic.finish()
        let summary = traffic.recorder.summary
        report.note(
            "traffic: \(final.delivered) acknowledged, \(final.resent) resent, \(final.lostMessages) lost, \(final.reordered) reordered,"
                + " \(final.duplicates) duplicates; \(final.phoneReconnects) phone and \(final.desktopReconnects) desktop reconnects"
                + " (\(final.tokenFallbacks) with the previous token); round trip p50 \(ms(summary.p50)), p99 \(ms(summary.p99)), max \(ms(summary.max))")
        report.check(
            "every session still talks", final.lostSessions.isEmpty,
            "\(traffic.sessionCount - final.lostSessions.count) of \(traffic.sessionCount) sessions completed a final round trip"
                + (final.lostSessions.isEmpty ? "" : "; lost: \(final.lostSessions.joined(separator: ", "))"))
        report.check(
            "no command lost or reordered", final.lostMessages == 0 && final.reordered == 0,
            "\(final.lostMessages) lost, \(final.reordered) reordered of \(final.sent) sent (\(final.resent) needed a resend)")
        report.fact("sessions", .int(traffic.sessionCount))
        report.fact("messages_delivered", .int(final.delivered))
        report.fact("messages_resent", .int(final.resent))
        report.fact("messages_lost", .int(final.lostMessages))
        report.fact("messages_reordered", .int(final.reordered))
        report.fact("lost_sessions", .int(final.lostSessions.count))
        report.fact("phone_reconnects", .int(final.phoneReconnects))
        report.fact("desktop_reconnects", .int(final.desktopReconnects))
        report.fact("p50_latency_us", .int(summary.p50))
        report.fact("p99_latency_us", .int(summary.p99))
        report.fact("max_latency_us", .int(summary.max))
        _ = await cluster.shutdown(drainTimeout: Duration.seconds(10))
        return report
    }

    static func ms(_ micros: Int) -> String { String(format: "%.1f ms", Double(micros) / 1000) }

    /// One drill's cluster, traffic and report.
    struct Context {
        let cluster: LocalCluster
        let traffic: ClusterTraffic
        let report: DrillReport
        let configuration: DrillConfiguration
        let sameNode: Set<Int>

        var nodes: Range<Int> { 0..<cluster.count }

        // MARK: Node loss

        func nodeLoss() async {
            let victim = 1
            let survivors = nodes.filter { $0 != victim }
            let affected = (0..<traffic.sessionCount).filter { traffic.homes(of: $0).desktop == victim || traffic.homes(of: $0).phone == victim }
            let held = await gauge(victim, "relay_active_websockets")
            let beforeMetrics = await scrape(survivors)
            let pid = cluster.pid(victim)
            let killed = ContinuousClock.now
            try? await cluster.kill(victim)
            report.note("kill -9 node \(victim) (pid \(pid)): it held \(Int(held)) sockets; \(affected.count) sessions had a client on it")

            await checkRecovery("every session delivers again without the node", since: killed) {
                "the last session had a command acknowledged \($0.secondsText) after the kill"
            }
            let afterMetrics = await scrape(survivors)
            let successes = delta(beforeMetrics, afterMetrics, "relay_ws_auth_successes_total")
            let failures = delta(beforeMetrics, afterMetrics, "relay_ws_auth_failures_total")
            let sockets = survivors.map { Int(prometheusSampleValue(afterMetrics[$0] ?? "", "relay_active_websockets")) }
            report.note(
                "survivors: relay_ws_auth_successes_total +\(Int(successes)) (the reconnects), relay_ws_auth_failures_total +\(Int(failures)),"
                    + " relay_active_websockets \(sockets.map(String.init).joined(separator: " + ")) = \(sockets.reduce(0, +))")
            report.fact("survivor_auth_successes", .int(Int(successes)))
            report.fact("survivor_auth_failures", .int(Int(failures)))

            let remaining = configuration.outage - (ContinuousClock.now - killed)
            if remaining > .zero { try? await Task.sleep(for: remaining) }
            await restartNode(victim)
        }

        // MARK: Redis restart

        func redisRestart() async {
            guard let redis = cluster.redisServer,
                let beforeMetrics = await outage(of: redis, "redis", stopped: "redis-server stopped (SIGTERM; append-only file complete)", sameNodeOnly: false, during: {
                    let startStatus = await pairStartStatus(node: 0)
                    report.check(
                        "new pairings are refused while Redis is down", startStatus.status == 503,
                        "POST /pair/start answered \(startStatus.status.map(String.init) ?? "nothing") after \(startStatus.elapsed.secondsText)")
                })?.before
            else { return }
            let afterMetrics = await scrape(Array(nodes))
            report.note(
                "relay_redis_reconnects_total +\(Int(delta(beforeMetrics, afterMetrics, "relay_redis_reconnects_total"))),"
                    + " relay_redis_errors_total +\(Int(delta(beforeMetrics, afterMetrics, "relay_redis_errors_total"))) across the nodes")
            await reconnectEveryPhone(beforeMetrics: afterMetrics, why: "sessions, devices and tokens survived the restart")
        }

        // MARK: NATS restart

        func natsRestart() async {
            guard let nats = cluster.natsServer,
                let result = await outage(of: nats, "nats", stopped: "nats-server stopped", sameNodeOnly: true, during: {})
            else { return }
            let (beforeMetrics, started) = result
            await checkRecovery("cross-node traffic resumes", since: started) {
                "every session had a command acknowledged \($0.secondsText) after NATS was back"
            }
            let afterMetrics = await scrape(Array(nodes))
            report.note(
                "relay_nats_reconnects_total +\(Int(delta(beforeMetrics, afterMetrics, "relay_nats_reconnects_total"))) across the nodes,"
                    + " relay_nats_published_total +\(Int(delta(beforeMetrics, afterMetrics, "relay_nats_published_total"))),"
                    + " relay_nats_received_total +\(Int(delta(beforeMetrics, afterMetrics, "relay_nats_received_total"))),"
                    + " relay_nats_publish_failures_total +\(Int(delta(beforeMetrics, afterMetrics, "relay_nats_publish_failures_total"))),"
                    + " relay_nats_rejected_total +\(Int(delta(beforeMetrics, afterMetrics, "relay_nats_rejected_total")))")
        }

        // MARK: Rolling restart

        func rollingRestart() async {
            var statuses: [Int32] = []
            let began = ContinuousClock.now
            for node in nodes {
                let held = await gauge(node, "relay_active_websockets")
                let stopping = ContinuousClock.now
                let status = (try? await cluster.stop(node, timeout: .seconds(Int64(configuration.drainPeriodMilliseconds / 1000 + 15)))) ?? -1
                statuses.append(status)
                report.note(
                    "node \(node): SIGTERM with \(Int(held)) sockets; drained and exited with status \(status) after \((ContinuousClock.now - stopping).secondsText)")
                await restartNode(node)
            }
            report.check(
                "every node drains and exits cleanly", statuses.allSatisfy { $0 == 0 },
                "exit statuses \(statuses.map(String.init).joined(separator: ", "))")
            let finished = ContinuousClock.now
            await checkRecovery("every session delivers after the rollout", since: finished, recordFact: false) {
                "rollout took \((finished - began).secondsText); every session acknowledged again \($0.secondsText) after it"
            }
            // Every node is a new process now: its counters cover the reconnects of the rollout.
            let metrics = await scrape(Array(nodes))
            let failures = nodes.reduce(0.0) { $0 + prometheusSum(metrics[$1] ?? "", "relay_ws_auth_failures_total") }
            let successes = nodes.reduce(0.0) { $0 + prometheusSum(metrics[$1] ?? "", "relay_ws_auth_successes_total") }
            report.check(
                "reconnects authenticate with the tokens clients hold", failures == 0,
                "relay_ws_auth_successes_total \(Int(successes)), relay_ws_auth_failures_total \(Int(failures)) on the new processes")
        }

        // MARK: Secret rotation

        /// The three rollouts of Runbooks/secret-rotation.md, each a rolling restart with the
        /// Secret's new values, under cross-node traffic: no envelope may be rejected.
        func secretRotation() async {
            let old = cluster.environment["NATS_HMAC_SECRET"] ?? ""
            let new = String((0..<64).map { _ in "0123456789abcdef".randomElement()! })
            let rollouts: [(String, [String: String])] = [
                ("rollout 1: NEW added as NATS_HMAC_PREVIOUS_SECRET (verify-only), OLD still signs",
                 ["NATS_HMAC_SECRET": old, "NATS_HMAC_PREVIOUS_SECRET": new]),
                ("rollout 2: NEW signs, OLD accepted as previous", ["NATS_HMAC_SECRET": new, "NATS_HMAC_PREVIOUS_SECRET": old]),
                ("rollout 3: previous removed", ["NATS_HMAC_SECRET": new, "NATS_HMAC_PREVIOUS_SECRET": ""]),
            ]
            var rejected = 0.0
            var resumed = true
            for (label, values) in rollouts {
                report.note(label)
                let began = ContinuousClock.now
                for node in nodes {
                    // The process about to go: what it rejected over its life.
                    rejected += prometheusSum((try? await cluster.prometheus(node)) ?? "", "relay_nats_rejected_total")
                    do {
                        try await cluster.restart(
                            node, overrides: values, drainTimeout: .seconds(Int64(configuration.drainPeriodMilliseconds / 1000 + 15)),
                            readyTimeout: configuration.recoveryTimeout)
                    } catch {
                        report.check("node \(node) restarts with the rotated values", false, "\(error)")
                        return
                    }
                }
                let restarted = ContinuousClock.now
                let recovered = await traffic.waitUntilEverySessionDelivers(since: restarted, timeout: configuration.recoveryTimeout)
                resumed = resumed && recovered != nil
                report.note(
                    "all \(cluster.count) nodes restarted in \((restarted - began).secondsText); "
                        + (recovered.map { "every session delivering again \(($0 - restarted).secondsText) later" } ?? "not every session delivers"))
            }
            let final = await scrape(Array(nodes))
            rejected += nodes.reduce(0.0) { $0 + prometheusSum(final[$1] ?? "", "relay_nats_rejected_total") }
            report.check(
                "every session delivers after each rollout", resumed,
                resumed ? "cross-node traffic resumed after all three rollouts" : "a rollout left sessions that did not deliver")
            report.check(
                "no envelope rejected during the rotation", rejected == 0,
                "relay_nats_rejected_total summed over every process of the drill: \(Int(rejected))")
            report.fact("nats_envelopes_rejected", .int(Int(rejected)))
        }

        // MARK: Shared steps

        /// Waits until every session has had a command acknowledged since `since`, checks that
        /// as `name` (described by `describe` with the time it took) and records it as
        /// `recovery_seconds` unless `recordFact` is false.
        func checkRecovery(
            _ name: String, since: ContinuousClock.Instant, recordFact: Bool = true, describe: (Duration) -> String
        ) async {
            let recovered = await traffic.waitUntilEverySessionDelivers(since: since, timeout: configuration.recoveryTimeout)
            report.check(
                name, recovered != nil, recovered.map { describe($0 - since) } ?? "not within \(configuration.recoveryTimeout.secondsText)")
            if recordFact { report.fact("recovery_seconds", .number(recovered.map { ($0 - since).seconds })) }
        }

        /// Stops a dependency for `configuration.outage`: every node must turn unready with
        /// `relay_dependency_up{dependency=<name>}` at 0 and established sockets must keep routing
        /// (same-node ones only, with `sameNodeOnly`); `during` runs while it is down. Then starts
        /// it again on the same port and waits until every node is ready.
        ///
        /// - Returns: every node's metrics before the stop and when the restart began; nil when
        ///   the server could not be started again (a failed check).
        func outage(
            of server: LocalDependencyServer, _ name: String, stopped note: String, sameNodeOnly: Bool, during: () async -> Void
        ) async -> (before: [Int: String], started: ContinuousClock.Instant)? {
            let before = await scrape(Array(nodes))
            let stopped = ContinuousClock.now
            try? await server.stop()
            report.note(note)
            let unready = await waitForReadiness(false, since: stopped)
            let down = await scrape(Array(nodes))
            let series = "relay_dependency_up{dependency=\"\(name)\"}"
            report.note("\(series) per node: " + nodes.map { "\(Int(prometheusSampleValue(down[$0] ?? "", series)))" }.joined(separator: ", "))
            await during()
            await holdOutage(since: stopped, expectingSameNodeOnly: sameNodeOnly, unready: unready)

            let started = ContinuousClock.now
            do {
                try await server.start()
                report.note("\(URL(fileURLWithPath: server.executable).lastPathComponent) started again on the same port (\(server.port))")
            } catch {
                report.check("\(name) restarts", false, "\(error)")
                return nil
            }
            _ = await waitForReadiness(true, since: started)
            return (before, started)
        }

        /// While a dependency is down: established sockets keep routing (same-node ones at least),
        /// until `configuration.outage` has passed since `since`.
        func holdOutage(since: ContinuousClock.Instant, expectingSameNodeOnly: Bool, unready: Bool) async {
            report.check(
                "every node reports not ready", unready,
                unready ? "/readyz 503 on all \(cluster.count) nodes" : "a node stayed ready with its dependency down")
            let remaining = configuration.outage - (ContinuousClock.now - since)
            if remaining > .zero { try? await Task.sleep(for: remaining) }
            let delivering = Set(traffic.sessionsDelivering(since: since + .milliseconds(500)))
            let crossNode = Set(0..<traffic.sessionCount).subtracting(sameNode)
            report.note(
                "during the outage: \(delivering.intersection(sameNode).count) of \(sameNode.count) same-node sessions and "
                    + "\(delivering.intersection(crossNode).count) of \(crossNode.count) cross-node sessions had commands acknowledged")
            let expected = expectingSameNodeOnly ? sameNode : Set(0..<traffic.sessionCount)
            report.check(
                "established sockets keep routing", expected.isSubset(of: delivering),
                expectingSameNodeOnly
                    ? "same-node sessions delivering: \(delivering.intersection(sameNode).count) of \(sameNode.count)"
                    : "sessions delivering: \(delivering.count) of \(traffic.sessionCount)")
        }

        /// Drops every phone so it reconnects with the token it holds, and checks that all of them
        /// authenticate and deliver.
        func reconnectEveryPhone(beforeMetrics: [Int: String], why: String) async {
            let dropped = ContinuousClock.now
            for index in 0..<traffic.sessionCount { traffic.dropPhone(index) }
            let recovered = await traffic.waitUntilEverySessionDelivers(since: dropped, timeout: configuration.recoveryTimeout)
            let afterMetrics = await scrape(Array(nodes))
            let failures = delta(beforeMetrics, afterMetrics, "relay_ws_auth_failures_total")
            report.check(
                "every phone reconnects with its token: \(why)", recovered != nil && failures == 0,
                (recovered.map { "all \(traffic.sessionCount) phones reconnected and delivered within \(($0 - dropped).secondsText)" }
                    ?? "not every session delivered within \(configuration.recoveryTimeout.secondsText)")
                    + "; relay_ws_auth_failures_total +\(Int(failures))")
            report.fact("recovery_seconds", .number(recovered.map { ($0 - dropped).seconds }))
        }

        /// Starts node `index` again and notes how long it took to be ready.
        func restartNode(_ index: Int) async {
            let starting = ContinuousClock.now
            do {
                try await cluster.restart(index, readyTimeout: configuration.recoveryTimeout)
                report.note("node \(index) restarted on port \(cluster.port(index)): /readyz 200 after \((ContinuousClock.now - starting).secondsText)")
            } catch {
                report.check("node \(index) restarts", false, "\(error)")
            }
        }

        /// Polls every node's `/readyz` until all of them are (or are not) ready, noting when each
        /// got there. Returns false when one did not within the recovery timeout.
        func waitForReadiness(_ ready: Bool, since: ContinuousClock.Instant) async -> Bool {
            var pending = Set(nodes)
            let deadline = ContinuousClock.now + configuration.recoveryTimeout
            while !pending.isEmpty, ContinuousClock.now < deadline {
                for node in pending.sorted() {
                    let status = try? await cluster.node(node).http.get("/readyz", timeout: .milliseconds(500)).status
                    if (status == 200) == ready, status != nil {
                        pending.remove(node)
                        report.note("node \(node): /readyz \(status ?? 0) after \((ContinuousClock.now - since).secondsText)")
                    }
                }
                try? await Task.sleep(for: .milliseconds(25))
            }
            if !pending.isEmpty {
                report.check(
                    "every node becomes \(ready ? "ready" : "not ready")", false,
                    "nodes \(pending.sorted().map(String.init).joined(separator: ", ")) did not within \(configuration.recoveryTimeout.secondsText)")
            }
            return pending.isEmpty
        }

        /// `POST /pair/start` for a new session on `node`, and how long the answer took.
        func pairStartStatus(node: Int) async -> (status: Int?, elapsed: Duration) {
            let asked = ContinuousClock.now
            let status = try? await RelayDesktop(baseURL: cluster.baseURL(node)).startPairing().status
            return (status, ContinuousClock.now - asked)
        }

        func scrape(_ indexes: [Int]) async -> [Int: String] {
            var result: [Int: String] = [:]
            for index in indexes { result[index] = try? await cluster.prometheus(index) }
            return result
        }

        func gauge(_ node: Int, _ series: String) async -> Double {
            prometheusSampleValue((try? await cluster.prometheus(node)) ?? "", series)
        }

        /// How much `metric` (all its series, all the scraped nodes) grew.
        func delta(_ before: [Int: String], _ after: [Int: String], _ metric: String) -> Double {
            after.keys.reduce(0.0) { $0 + prometheusSum(after[$1] ?? "", metric) - prometheusSum(before[$1] ?? "", metric) }
        }
    }
}

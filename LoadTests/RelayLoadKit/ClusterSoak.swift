// The cluster soak: Redis, NATS and three relay nodes on loopback; desktops and phones on
// different nodes exchange acknowledged messages while phones drop and reconnect with rotated
// tokens, a node is killed and restarted, and every node is restarted in turn. It counts what
// clients would notice: sessions that can no longer talk, and messages lost or out of order.

import Foundation
import RelayTestClient
import RelayLocalCluster

/// Configuration of the cluster soak.
package struct ClusterSoakConfiguration: Sendable {
    package var nodes = 3
    package var sessions = 24
    package var duration: Duration = .seconds(90)
    /// Pause between a phone's acknowledged command and its next (production rate limits apply:
    /// 240 commands per minute per device).
    package var commandInterval: Duration = .milliseconds(350)
    /// How often one phone drops its socket and reconnects with its rotated token.
    package var churnInterval: Duration = .seconds(2)
    /// How long a phone waits for the desktop's acknowledgement before it resends.
    package var ackTimeout: Duration = .seconds(2)
    package var drainPeriodMilliseconds = 2000
    package var origin = "http://localhost:4173"
    package var summaryPath = "output/remote-control/relay-cluster-soak-summary.json"
    package var progress = true

    package init() {}

    /// `RELAY_SOAK_NODES`, `RELAY_SOAK_SESSIONS`, `RELAY_SOAK_DURATION_S`,
    /// `RELAY_SOAK_COMMAND_INTERVAL_MS`, `RELAY_SOAK_CHURN_INTERVAL_MS`, `RELAY_SOAK_DRAIN_PERIOD_MS`,
    /// `RELAY_SOAK_CLUSTER_SUMMARY_PATH`, `RELAY_LOAD_ORIGIN`, `RELAY_LOAD_PROGRESS`.
    package init(environment: HarnessEnvironment) {
        nodes = max(2, environment.positiveInt("RELAY_SOAK_NODES", default: nodes))
        sessions = environment.positiveInt("RELAY_SOAK_SESSIONS", default: sessions)
        duration = .seconds(environment.positiveInt("RELAY_SOAK_DURATION_S", default: 90))
        commandInterval = .milliseconds(environment.positiveInt("RELAY_SOAK_COMMAND_INTERVAL_MS", default: 350))
        churnInterval = .milliseconds(environment.positiveInt("RELAY_SOAK_CHURN_INTERVAL_MS", default: 2000))
        drainPeriodMilliseconds = environment.positiveInt("RELAY_SOAK_DRAIN_PERIOD_MS", default: drainPeriodMilliseconds)
        origin = environment.string("RELAY_LOAD_ORIGIN") ?? origin
        summaryPath = environment.string("RELAY_SOAK_CLUSTER_SUMMARY_PATH") ?? summaryPath
        progress = environment.bool("RELAY_LOAD_PROGRESS", default: true)
    }
}

/// The cluster soak.
package enum ClusterSoak {
    package static func run(_ configuration: ClusterSoakConfiguration) async throws -> (ArtifactJSON, HTMLReport, Bool) {
        let cluster = try await LocalCluster.start(
            nodes: configuration.nodes, redis: .local(appendOnly: true), nats: .local(),
            environment: [
                "ALLOWED_ORIGINS": configuration.origin, "MAX_PAIR_REQUESTS_PER_MINUTE": "20000",
                "DRAIN_PERIOD_MS": "\(configuration.drainPeriodMilliseconds)",
            ])
        defer { cluster.killAll() }
        let nodeCount = configuration.nodes

        // Every session has its desktop on node i and its phone on node i+1 (the default placement).
        var trafficConfiguration = ClusterTrafficConfiguration(sessions: configuration.sessions, origin: configuration.origin)
        trafficConfiguration.commandInterval = configuration.commandInterval
        trafficConfiguration.ackTimeout = configuration.ackTimeout
        let traffic = try await ClusterTraffic.start(on: cluster, trafficConfiguration)
        let start = traffic.started
        let recorder = traffic.recorder
        let markers = Locked<[HTMLReport.Marker]>([])
        let accounting = RunAccounting(relayPIDs: (0..<nodeCount).map { cluster.pid($0) })
        let cpuBefore = Locked<Double>(0)
        func mark(_ label: String) {
            let second = Int((ContinuousClock.now - start).seconds)
            markers.withLock { $0.append(HTMLReport.Marker(second: second, label: label)) }
            harnessLog("[cluster-soak \(second)s] \(label)")
        }
        let progress = ProgressReporter(label: "cluster-soak", enabled: configuration.progress) {
            let t = traffic.counts
            return "delivered \(t.delivered) resent \(t.resent) lost \(t.lostMessages) reordered \(t.reordered)"
                + " phone reconnects \(t.phoneReconnects) desktop reconnects \(t.desktopReconnects) p99 \(SessionLoad.ms(recorder.summary.p99)) ms"
        }

        // Disruptions: churn throughout, a node killed and restarted at a third, a rolling restart
        // of every node at two thirds; then the senders stop.
        let churn = Task {
            var generator = SystemRandomNumberGenerator()
            while !Task.isCancelled {
                try? await Task.sleep(for: configuration.churnInterval)
                traffic.dropPhone(Int.random(in: 0..<traffic.sessionCount, using: &generator))
            }
        }
        try? await Task.sleep(until: start + configuration.duration / 3, clock: .continuous)
        let victim = 1 % nodeCount
        cpuBefore.withLock { $0 += accounting.snapshot(relayPIDs: [cluster.pid(victim)]).relayCPUSeconds ?? 0 }
        mark("kill -9 node \(victim)")
        try? await cluster.kill(victim)
        try? await Task.sleep(for: .seconds(3))
        mark("restart node \(victim)")
        try? await cluster.restart(victim)
        try? await Task.sleep(until: start + configuration.duration * 2 / 3, clock: .continuous)
        mark("rolling restart")
        for node in 0..<nodeCount {
            cpuBefore.withLock { $0 += accounting.snapshot(relayPIDs: [cluster.pid(node)]).relayCPUSeconds ?? 0 }
            try? await cluster.restart(node)
            mark("node \(node) restarted")
        }
        try? await Task.sleep(until: start + configuration.duration, clock: .continuous)
        churn.cancel()
        mark("stop sending")

        // Every session must still talk: one final acknowledged round trip each.
        let final = await traffic.finish()
        progress.stop()
        let usage = accounting.snapshot(relayPIDs: (0..<nodeCount).map { cluster.pid($0) })
        let relayCPU = (usage.relayCPUSeconds ?? 0) + cpuBefore.withLock { $0 }
        _ = await cluster.shutdown(drainTimeout: .seconds(10))

        let summary = recorder.summary
        let failures = final.gateFailures
        let json = ArtifactJSON.object([
            ("status", .string(failures.isEmpty ? "ok" : "failed")),
            ("nodes", .int(nodeCount)),
            ("sessions", .int(configuration.sessions)),
            ("duration_s", .number(configuration.duration.seconds)),
            ("messages_sent", .int(final.sent)),
            ("messages_delivered", .int(final.delivered)),
            ("messages_resent", .int(final.resent)),
            ("messages_duplicated", .int(final.duplicates)),
            ("messages_lost", .int(final.lostMessages)),
            ("messages_reordered", .int(final.reordered)),
            ("lost_sessions", .int(final.lostSessions.count)),
            ("lost_session_ids", .array(final.lostSessions.map { .string($0) })),
            ("phone_reconnects", .int(final.phoneReconnects)),
            ("phone_token_fallbacks", .int(final.tokenFallbacks)),
            ("desktop_reconnects", .int(final.desktopReconnects)),
            ("churn_drops", .int(final.churnDrops)),
            ("disruptions", .array(markers.withLock { $0 }.map { .object([("second", .int($0.second)), ("event", .string($0.label))]) })),
            ("sample_count", .int(summary.count)),
            ("p50_latency_us", .int(summary.p50)),
            ("p95_latency_us", .int(summary.p95)),
            ("p99_latency_us", .int(summary.p99)),
            ("p999_latency_us", .int(summary.p999)),
            ("max_latency_us", .int(summary.max)),
            ("machine_cores", .int(usage.machineCores)),
            ("relay_cpu_seconds", .number(relayCPU)),
            ("relay_peak_memory_bytes", .optionalInt(usage.relayPeakMemoryBytes)),
            ("harness_cpu_seconds", .number(usage.harnessCPUSeconds)),
            ("gate", .object([("max_lost_sessions", .int(0)), ("max_lost_messages", .int(0)), ("max_reordered_messages", .int(0))])),
            ("gate_failures", .array(failures.map { .string($0) })),
            ("report_html", .string(SoakRunner.reportPath(forSummary: configuration.summaryPath))),
            ("latency_timeline", .array(recorder.timeline.map(\.json))),
        ])
        let report = HTMLReport(
            title: "Relay cluster soak (\(nodeCount) nodes, \(configuration.sessions) sessions)", passed: failures.isEmpty,
            facts: [
                ("messages delivered", "\(final.delivered) (resent after a failure: \(final.resent), duplicates: \(final.duplicates))"),
                ("messages lost / reordered", "\(final.lostMessages) / \(final.reordered)"),
                ("sessions lost", "\(final.lostSessions.count) of \(configuration.sessions)"),
                ("reconnects", "phones \(final.phoneReconnects) (churn \(final.churnDrops)), desktops \(final.desktopReconnects)"),
                ("relay CPU", String(format: "%.1f s over %d nodes", relayCPU, nodeCount)),
                ("harness CPU", String(format: "%.1f s", usage.harnessCPUSeconds ?? 0)),
                ("machine cores", "\(usage.machineCores)"),
            ],
            failures: failures, timeline: recorder.timeline,
            rows: [HTMLReport.Row(label: "acknowledged round trips", count: summary.count, p50: summary.p50, p95: summary.p95, p99: summary.p99, max: summary.max)],
            markers: markers.withLock { $0 })
        return (json, report, failures.isEmpty)
    }
}

// The cluster soak: Redis, NATS and three relay nodes on loopback; desktops and phones on
// different nodes exchange acknowledged messages while phones drop and reconnect with rotated
// tokens, a node is killed and restarted, and every node is restarted in turn. It counts what
// clients would notice: sessions that can no longer talk, and messages lost or out of order.

import Foundation
import RelayClient
import RelayLocalCluster

/// Configuration of the cluster soak.
public struct ClusterSoakConfiguration: Sendable {
    public var nodes = 3
    public var sessions = 24
    public var duration: Duration = .seconds(90)
    /// Pause between a phone's acknowledged command and its next (production rate limits apply:
    /// 240 commands per minute per device).
    public var commandInterval: Duration = .milliseconds(350)
    /// How often one phone drops its socket and reconnects with its rotated token.
    public var churnInterval: Duration = .seconds(2)
    /// How long a phone waits for the desktop's acknowledgement before it resends.
    public var ackTimeout: Duration = .seconds(2)
    public var drainPeriodMilliseconds = 2000
    public var origin = "http://localhost:4173"
    public var summaryPath = "output/remote-control/relay-cluster-soak-summary.json"
    public var progress = true

    public init() {}

    /// `RELAY_SOAK_NODES`, `RELAY_SOAK_SESSIONS`, `RELAY_SOAK_DURATION_S`,
    /// `RELAY_SOAK_COMMAND_INTERVAL_MS`, `RELAY_SOAK_CHURN_INTERVAL_MS`, `RELAY_SOAK_DRAIN_PERIOD_MS`,
    /// `RELAY_SOAK_CLUSTER_SUMMARY_PATH`, `RELAY_LOAD_ORIGIN`, `RELAY_LOAD_PROGRESS`.
    public init(environment: HarnessEnvironment) {
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

/// What the cluster soak counted.
public struct ClusterSoakTally: Sendable {
    public var sent = 0
    public var delivered = 0
    public var resent = 0
    public var duplicates = 0
    public var reordered = 0
    public var lostMessages = 0
    public var lostSessions: [String] = []
    public var phoneReconnects = 0
    public var desktopReconnects = 0
    public var tokenFallbacks = 0
    public var churnDrops = 0

    /// The gate: nothing lost, nothing out of order, something delivered.
    public var gateFailures: [String] {
        var failures: [String] = []
        if !lostSessions.isEmpty { failures.append("lost_sessions \(lostSessions.count) exceeds 0: \(lostSessions.prefix(3).joined(separator: "; "))") }
        if lostMessages > 0 { failures.append("messages_lost \(lostMessages) exceeds 0") }
        if reordered > 0 { failures.append("messages_reordered \(reordered) exceeds 0") }
        if delivered == 0 { failures.append("no message was delivered") }
        return failures
    }
}

/// The cluster soak.
public enum ClusterSoak {
    /// One session's clients and what the desktop has seen.
    final class Driver: Sendable {
        let index: Int
        let desktop: RelayDesktop
        let phone: RelayPhone
        let desktopHome: Int
        let phoneHome: Int
        /// Seqs the desktop received, the highest, and counts.
        let seen = Locked<(set: Set<UInt64>, highest: UInt64, duplicates: Int, reordered: Int)>(([], 0, 0, 0))
        /// Acknowledgements the phone received (seq → time).
        let acks = Locked<[UInt64: ContinuousClock.Instant]>([:])
        let dropRequested = Locked(false)
        let phoneDone = Locked(false)

        init(index: Int, desktop: RelayDesktop, phone: RelayPhone, desktopHome: Int, phoneHome: Int) {
            (self.index, self.desktop, self.phone, self.desktopHome, self.phoneHome) = (index, desktop, phone, desktopHome, phoneHome)
        }
    }

    public static func run(_ configuration: ClusterSoakConfiguration) async throws -> (ArtifactJSON, HTMLReport, Bool) {
        let cluster = try await LocalCluster.start(
            nodes: configuration.nodes, redis: .local(appendOnly: true), nats: .local(),
            environment: [
                "ALLOWED_ORIGINS": configuration.origin, "MAX_PAIR_REQUESTS_PER_MINUTE": "20000",
                "DRAIN_PERIOD_MS": "\(configuration.drainPeriodMilliseconds)",
            ])
        defer { cluster.killAll() }
        let nodeCount = configuration.nodes
        func socketURL(_ node: Int) -> String { cluster.socketURL(node % nodeCount) }

        // Pair every session with its desktop on node i and its phone on node i+1.
        var drivers: [Driver] = []
        for index in 0..<configuration.sessions {
            let desktopHome = index % nodeCount
            let phoneHome = (index + 1) % nodeCount
            let desktop = RelayDesktop(baseURL: cluster.baseURL(desktopHome))
            let phone = RelayPhone(baseURL: cluster.baseURL(phoneHome), origin: configuration.origin)
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, phoneSocketURL: socketURL(phoneHome), deviceName: "Soak iPhone \(index)",
                idleTimeoutSeconds: 1800, drainIdle: .milliseconds(1))
            drivers.append(Driver(index: index, desktop: desktop, phone: phone, desktopHome: desktopHome, phoneHome: phoneHome))
        }

        let paired = drivers
        let start = ContinuousClock.now
        let recorder = LatencyRecorder(started: start)
        let tally = Locked(ClusterSoakTally())
        let markers = Locked<[HTMLReport.Marker]>([])
        let stopSending = Locked(false)
        let accounting = RunAccounting(relayPIDs: (0..<nodeCount).map { cluster.pid($0) })
        let cpuBefore = Locked<Double>(0)
        func mark(_ label: String) {
            let second = Int((ContinuousClock.now - start).seconds)
            markers.withLock { $0.append(HTMLReport.Marker(second: second, label: label)) }
            harnessLog("[cluster-soak \(second)s] \(label)")
        }
        let progress = ProgressReporter(label: "cluster-soak", enabled: configuration.progress) {
            let t = tally.withLock { $0 }
            let summary = recorder.summary
            return "delivered \(t.delivered) resent \(t.resent) lost \(t.lostMessages) reordered \(t.reordered)"
                + " phone reconnects \(t.phoneReconnects) desktop reconnects \(t.desktopReconnects) p99 \(SessionLoad.ms(summary.p99)) ms"
        }

        /// Connects a role, trying its home node first, then the others, until `deadline`.
        func reconnectDesktop(_ driver: Driver, deadline: ContinuousClock.Instant) async -> Bool {
            var attempt = 0
            while ContinuousClock.now < deadline {
                let node = driver.desktopHome + attempt
                attempt += 1
                await driver.desktop.disconnect()
                if (try? await driver.desktop.connect(url: socketURL(node), authTimeout: .seconds(3))) != nil {
                    tally.withLock { $0.desktopReconnects += 1 }
                    return true
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return false
        }
        func reconnectPhone(_ driver: Driver, deadline: ContinuousClock.Instant) async -> Bool {
            var attempt = 0
            while ContinuousClock.now < deadline {
                let node = driver.phoneHome + attempt
                attempt += 1
                await driver.phone.disconnect()
                do {
                    try await driver.phone.connect(url: socketURL(node), authTimeout: .seconds(3))
                    tally.withLock { $0.phoneReconnects += 1 }
                    return true
                } catch RelayClientError.authRejected {
                    // The rotated token may not have reached the store before the node died: the
                    // previous one is honoured for the grace period.
                    if let previous = driver.phone.previousToken,
                        (try? await driver.phone.connect(url: socketURL(node), token: previous, authTimeout: .seconds(3))) != nil
                    {
                        tally.withLock { $0.phoneReconnects += 1; $0.tokenFallbacks += 1 }
                        return true
                    }
                } catch {}
                try? await Task.sleep(for: .milliseconds(100))
            }
            return false
        }

        await withTaskGroup(of: Void.self) { group in
            for driver in paired {
                // The desktop: acknowledges every command, notes duplicates and order, until its
                // phone has finished.
                group.addTask {
                    var echoSeq: UInt64 = 0
                    while !driver.phoneDone.withLock({ $0 }) {
                        guard let socket = driver.desktop.currentSocket else {
                            if !(await reconnectDesktop(driver, deadline: .now + .seconds(30))) { return }
                            continue
                        }
                        guard let event = try? await socket.next(timeout: .milliseconds(250)) else { continue }
                        switch event {
                        case .text(let text):
                            guard let frame = try? RelayJSON(parsing: text), frame["payload"]?["type"]?.stringValue == "command",
                                let seq = frame["seq"]?.uint64Value
                            else { continue }
                            driver.seen.withLock { seen in
                                if seen.set.contains(seq) {
                                    seen.duplicates += 1
                                } else {
                                    if seq < seen.highest { seen.reordered += 1 }
                                    seen.set.insert(seq)
                                    seen.highest = max(seen.highest, seq)
                                }
                            }
                            echoSeq += 1
                            _ = try? await driver.desktop.sendEvent(seq: echoSeq, payload: ["ack": .int(Int64(seq))])
                        case .close, .closed:
                            if !(await reconnectDesktop(driver, deadline: .now + .seconds(30))) { return }
                        default:
                            continue
                        }
                    }
                }
                // The phone: one command in flight, resent until acknowledged.
                group.addTask {
                    defer { driver.phoneDone.withLock { $0 = true } }
                    var seq: UInt64 = 0
                    while true {
                        if stopSending.withLock({ $0 }) { return }
                        seq += 1
                        tally.withLock { $0.sent += 1 }
                        let firstSent = ContinuousClock.now
                        var attempts = 0
                        var acknowledged = false
                        let giveUp = firstSent + .seconds(45)
                        while !acknowledged, ContinuousClock.now < giveUp {
                            if driver.dropRequested.withLock({ let was = $0; $0 = false; return was }) {
                                tally.withLock { $0.churnDrops += 1 }
                                _ = await reconnectPhone(driver, deadline: .now + .seconds(30))
                            }
                            guard let socket = driver.phone.currentSocket else {
                                _ = await reconnectPhone(driver, deadline: .now + .seconds(30))
                                continue
                            }
                            attempts += 1
                            if attempts > 1 { tally.withLock { $0.resent += 1 } }
                            do {
                                try await driver.phone.sendCommand(
                                    name: "thread.select", commandID: "soak-\(driver.index)-\(seq)",
                                    fields: ["threadID": .string("thread-\(driver.index)")], seq: seq, includeTimestamp: false)
                                let deadline = ContinuousClock.now + configuration.ackTimeout
                                while !acknowledged {
                                    let remaining = deadline - ContinuousClock.now
                                    guard remaining > .zero, let event = try await socket.next(timeout: remaining) else { break }
                                    switch event {
                                    case .text(let text):
                                        if let frame = try? RelayJSON(parsing: text), let ack = frame["payload"]?["ack"]?.uint64Value, ack == seq {
                                            acknowledged = true
                                        }
                                    case .close, .closed:
                                        throw RelayClientError.connectionClosed("phone socket ended")
                                    default:
                                        continue
                                    }
                                }
                                if !acknowledged, attempts % 2 == 0 {
                                    // Two silent timeouts: the path may be dead (desktop's node killed). Resync.
                                    _ = await reconnectPhone(driver, deadline: .now + .seconds(30))
                                }
                            } catch {
                                _ = await reconnectPhone(driver, deadline: .now + .seconds(30))
                            }
                        }
                        if acknowledged {
                            let now = ContinuousClock.now
                            recorder.record(now - firstSent, at: now)
                            tally.withLock { $0.delivered += 1 }
                        } else {
                            tally.withLock { $0.lostMessages += 1 }
                            return
                        }
                        try? await Task.sleep(for: configuration.commandInterval)
                    }
                }
            }
            // Disruptions: churn throughout, a node killed and restarted at a third, a rolling
            // restart of every node at two thirds; then the senders stop.
            group.addTask {
                let churn = Task {
                    var generator = SystemRandomNumberGenerator()
                    while !Task.isCancelled {
                        try? await Task.sleep(for: configuration.churnInterval)
                        paired.randomElement(using: &generator)?.dropRequested.withLock { $0 = true }
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
                stopSending.withLock { $0 = true }
            }
        }
        progress.stop()

        // Every session must still talk: one final acknowledged round trip each.
        var final = tally.withLock { $0 }
        for driver in drivers {
            let seen = driver.seen.withLock { $0 }
            final.duplicates += seen.duplicates
            final.reordered += seen.reordered
            let ok = await finalRoundTrip(driver, reconnectPhone: reconnectPhone, reconnectDesktop: reconnectDesktop)
            if !ok { final.lostSessions.append("session \(driver.index)") }
        }
        let usage = accounting.snapshot(relayPIDs: (0..<nodeCount).map { cluster.pid($0) })
        let relayCPU = (usage.relayCPUSeconds ?? 0) + cpuBefore.withLock { $0 }
        for driver in drivers {
            await driver.phone.disconnect()
            await driver.desktop.disconnect()
        }
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

    /// A command and its acknowledgement after the disruptions, reconnecting as a client would.
    static func finalRoundTrip(
        _ driver: Driver, reconnectPhone: (Driver, ContinuousClock.Instant) async -> Bool,
        reconnectDesktop: (Driver, ContinuousClock.Instant) async -> Bool
    ) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        guard await reconnectDesktop(driver, deadline) else {
            harnessLog("[cluster-soak] session \(driver.index): the desktop could not reconnect")
            return false
        }
        guard await reconnectPhone(driver, deadline), let desktopSocket = driver.desktop.currentSocket else {
            harnessLog("[cluster-soak] session \(driver.index): the phone could not reconnect")
            return false
        }
        // Like a client after a resync: resend until the desktop has it (presence may take a
        // moment to reach the phone's node after both reconnected).
        let seq: UInt64 = 1_000_000
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                try await driver.phone.sendCommand(
                    name: "thread.select", commandID: "final-\(driver.index)", fields: ["threadID": .string("thread-\(driver.index)")],
                    seq: seq, includeTimestamp: false)
                try await SessionLoad.awaitCommand(seq: seq, on: desktopSocket, timeout: .seconds(2))
                return true
            } catch {
                lastError = error
            }
        }
        let phoneFrames = (try? await driver.phone.currentSocket?.drain(idle: .milliseconds(100))) ?? []
        harnessLog("[cluster-soak] session \(driver.index): final round trip failed: \(lastError.map { "\($0)" } ?? "no time left"); phone saw \(phoneFrames)")
        return false
    }
}

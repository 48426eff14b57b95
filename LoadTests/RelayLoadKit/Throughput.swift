// Throughput: an open-loop offered rate of phone→desktop commands. Each command is due at a fixed
// time and its latency runs from that time, not from when it was sent, so a stalled harness or
// relay shows up as latency instead of silently lowering the rate (no coordinated omission).

import Foundation
import RelayTestClient
import Synchronization

/// Configuration of the throughput mode.
package struct ThroughputConfiguration: Sendable {
    /// Round trips per second offered, across all sessions.
    package var rate = 2000
    package var duration: Duration = .seconds(60)
    package var sessions = 100
    package var setupConcurrency = 32
    /// How long after the last due time a command may still arrive.
    package var drainTimeout: Duration = .seconds(5)
    package var p95BudgetMilliseconds = 750
    package var p99BudgetMilliseconds = 10
    package var common = ModeConfiguration()

    package init() {}

    /// `RELAY_LOAD_RATE`, `RELAY_LOAD_DURATION_S`, `RELAY_LOAD_SESSIONS`, `RELAY_LOAD_SETUP_CONCURRENCY`,
    /// `RELAY_LOAD_P95_BUDGET_MS`, `RELAY_LOAD_P99_BUDGET_MS` and the common variables.
    package init(environment: HarnessEnvironment) {
        rate = environment.positiveInt("RELAY_LOAD_RATE", default: rate)
        duration = .seconds(environment.positiveInt("RELAY_LOAD_DURATION_S", default: 60))
        sessions = environment.positiveInt("RELAY_LOAD_SESSIONS", default: sessions)
        setupConcurrency = environment.positiveInt("RELAY_LOAD_SETUP_CONCURRENCY", default: setupConcurrency)
        p95BudgetMilliseconds = environment.positiveInt("RELAY_LOAD_P95_BUDGET_MS", default: p95BudgetMilliseconds)
        p99BudgetMilliseconds = environment.positiveInt("RELAY_LOAD_P99_BUDGET_MS", default: p99BudgetMilliseconds)
        common = ModeConfiguration(environment: environment, mode: "throughput")
    }
}

/// The throughput mode.
package enum Throughput {
    /// Limits a local relay needs so the offered rate is not rate-limited away.
    package static let relayOverrides = [
        "MAX_REMOTE_COMMANDS_PER_MINUTE": "1000000", "MAX_REMOTE_SESSION_COMMANDS_PER_MINUTE": "1000000",
        "MAX_WS_MESSAGES_PER_MINUTE": "1000000",
    ]

    package static func run(_ configuration: ThroughputConfiguration, relay: RelayUnderTest) async -> LoadResult {
        let sessions = configuration.sessions
        let perSession = Double(configuration.rate) / Double(sessions)
        let interval = Duration.seconds(1 / perSession)
        let messagesPerSession = Int((configuration.duration.seconds * perSession).rounded())
        var errors: [String] = []

        let paired = await relay.pairSessions(count: sessions, width: configuration.setupConcurrency, origin: configuration.common.origin, errors: &errors)
        guard errors.isEmpty else {
            return LoadResult(
                mode: "throughput", baseURL: relay.baseURL, origin: configuration.common.origin, sessions: sessions,
                messagesPerSession: messagesPerSession, latency: LatencySummary(samples: []),
                p95BudgetMilliseconds: configuration.p95BudgetMilliseconds, errors: errors)
        }

        let start = ContinuousClock.now + .milliseconds(200)
        let recorder = LatencyRecorder(started: start)
        let sent = Counter()
        let accounting = RunAccounting(relayPIDs: relay.pids)
        let progress = ProgressReporter(label: "throughput", enabled: configuration.common.progress) {
            let recent = recorder.summary
            return "sent \(sent.value) delivered \(recent.count) p50 \(SessionLoad.ms(recent.p50)) p99 \(SessionLoad.ms(recent.p99)) ms"
        }
        let failures = Locked<[String]>([])
        await withTaskGroup(of: Void.self) { group in
            for (index, session) in paired.enumerated() {
                // Sessions are staggered across one interval so the load is smooth.
                let offset = interval * (Double(index) / Double(sessions))
                func due(_ seq: UInt64) -> ContinuousClock.Instant { start + offset + interval * Double(seq - 1) }
                group.addTask {
                    do {
                        for seq in UInt64(1)...UInt64(messagesPerSession) {
                            try await Task.sleep(until: due(seq), clock: .continuous)
                            try await session.phone.sendCommand(
                                name: "thread.select", commandID: "cmd-\(index)-\(seq)", fields: ["threadID": .string("thread-\(index)")],
                                seq: seq, includeTimestamp: false)
                            sent.increment()
                        }
                    } catch {
                        failures.withLock { $0.append("session \(index) sender: \(error)") }
                    }
                }
                group.addTask {
                    do {
                        let socket = try session.desktop.socket
                        var received = 0
                        let deadline = due(UInt64(messagesPerSession)) + configuration.drainTimeout
                        while received < messagesPerSession {
                            let text = try await socket.nextText(timeout: max(deadline - .now, .zero))
                            let now = ContinuousClock.now
                            let frame = try JSONValue.parse(text)
                            guard frame["payload"]?["type"]?.stringValue == "command", let seq = frame["seq"]?.uint64Value else { continue }
                            recorder.record(now - due(seq), at: now)
                            received += 1
                        }
                    } catch {
                        failures.withLock { $0.append("session \(index) receiver: \(error)") }
                    }
                }
            }
        }
        progress.stop()
        let usage = accounting.snapshot()
        errors += failures.withLock { $0 }
        let counters = (try? await relay.counters()) ?? RelayCounters()
        for session in paired {
            await session.phone.disconnect()
            await session.desktop.disconnect()
        }
        let summary = recorder.summary
        let measured = Double(configuration.duration.seconds)
        var extra = relay.relayMembers
        extra += [
            ("offered_rate", .int(configuration.rate)),
            ("achieved_rate", .number(Double(summary.count) / measured, places: 1)),
            ("sent", .int(sent.value)),
            ("delivered", .int(summary.count)),
            ("undelivered", .int(sent.value - summary.count)),
            ("duration_s", .number(measured)),
            ("p99_latency_budget_ms", .int(configuration.p99BudgetMilliseconds)),
            ("passes_p99_budget", .bool(errors.isEmpty && LatencySummary.milliseconds(summary.p99) <= configuration.p99BudgetMilliseconds)),
        ]
        return LoadResult(
            mode: "throughput", baseURL: relay.baseURL, origin: configuration.common.origin, sessions: sessions,
            messagesPerSession: messagesPerSession, latency: summary, p95BudgetMilliseconds: configuration.p95BudgetMilliseconds,
            counters: counters, errors: errors, usage: usage, extra: extra, timeline: recorder.timeline)
    }
}

// PROTOCOL §9.1's scenario: many sessions in parallel, each pairing a desktop and a phone and then
// timing phone→desktop command round trips.

import Foundation
import NIOCore
import NIOPosix
import RelayTestClient

/// §9.1's configuration, with the harness defaults (the Makefile exports the script defaults).
package struct SessionLoadConfiguration: Sendable {
    package var sessions = 50
    package var messagesPerSession = 10
    package var setupConcurrency = 16
    package var roundTripTimeout: Duration = .milliseconds(2000)
    package var p95BudgetMilliseconds = 750
    /// `nil`: the harness starts a local relay.
    package var baseURL: String?
    package var origin = "http://localhost:4173"
    package var resultsPath: String?
    /// Ours: phones join and connect here (another node of a cluster), so round trips cross the bus.
    package var phoneBaseURL: String?
    package var progress = true

    package init() {}

    /// Reads `RELAY_LOAD_*` with §9.1's rules.
    package init(environment: HarnessEnvironment) {
        sessions = environment.positiveInt("RELAY_LOAD_SESSIONS", default: sessions)
        messagesPerSession = environment.positiveInt("RELAY_LOAD_MESSAGES_PER_SESSION", default: messagesPerSession)
        setupConcurrency = environment.positiveInt("RELAY_LOAD_SETUP_CONCURRENCY", default: setupConcurrency)
        roundTripTimeout = .milliseconds(environment.positiveInt("RELAY_LOAD_ROUNDTRIP_TIMEOUT_MS", default: 2000))
        p95BudgetMilliseconds = environment.positiveInt("RELAY_LOAD_P95_BUDGET_MS", default: p95BudgetMilliseconds)
        baseURL = environment.baseURL("RELAY_LOAD_BASE_URL")
        origin = environment.string("RELAY_LOAD_ORIGIN") ?? origin
        resultsPath = environment.string("RELAY_LOAD_RESULTS_PATH")
        phoneBaseURL = environment.baseURL("RELAY_LOAD_PHONE_BASE_URL")
        progress = environment.bool("RELAY_LOAD_PROGRESS", default: true)
    }
}

/// The §9.1 scenario.
package enum SessionLoad {
    /// Runs the scenario against `relay` and returns the result (written by the caller). Samples
    /// also go to `alsoRecordInto` when given (a mode that aggregates several runs).
    package static func run(
        _ configuration: SessionLoadConfiguration, relay: RelayUnderTest, alsoRecordInto: LatencyRecorder? = nil
    ) async -> LoadResult {
        let recorder = LatencyRecorder()
        let accounting = RunAccounting(relayPIDs: relay.pids)
        let completed = Counter()
        let phoneBaseURL = configuration.phoneBaseURL ?? relay.baseURL
        let progress = ProgressReporter(label: "load", enabled: configuration.progress) {
            let summary = recorder.summary
            return "sessions \(completed.value)/\(configuration.sessions) round trips \(summary.count)"
                + " p50 \(Self.ms(summary.p50)) p95 \(Self.ms(summary.p95)) ms"
        }
        let failures = await forEachConcurrently(count: configuration.sessions, width: configuration.setupConcurrency) { index in
            try await runSession(
                index: index, configuration: configuration, baseURL: relay.baseURL, phoneBaseURL: phoneBaseURL,
                recorders: [recorder] + (alsoRecordInto.map { [$0] } ?? []))
            completed.increment()
        }
        progress.stop()
        var counters = RelayCounters()
        var errors = failures.map { "session \($0.0): \($0.1)" }
        if errors.isEmpty {
            do {
                counters = try await relay.counters()
            } catch {
                errors.append("GET /metricsz: \(error)")
            }
        }
        var extra = relay.relayMembers
        extra.append(("setup_concurrency", .int(configuration.setupConcurrency)))
        extra.append(("roundtrip_timeout_ms", .int(Int(configuration.roundTripTimeout.seconds * 1000))))
        extra.append(("expected_sample_count", .int(configuration.sessions * configuration.messagesPerSession)))
        if configuration.phoneBaseURL != nil { extra.append(("phone_base_url", .string(phoneBaseURL))) }
        return LoadResult(
            mode: "load", baseURL: relay.baseURL, origin: configuration.origin, sessions: configuration.sessions,
            messagesPerSession: configuration.messagesPerSession, latency: recorder.summary,
            p95BudgetMilliseconds: configuration.p95BudgetMilliseconds, counters: counters, errors: errors,
            usage: accounting.snapshot(), extra: extra, timeline: recorder.timeline)
    }

    /// Whether a result passes everything §9.1's test asserts: no task failure, every sample, and
    /// the three budgets.
    package static func assertionFailures(_ result: LoadResult) -> [String] {
        var failures: [String] = []
        if let first = result.errors.first { failures.append("\(result.errors.count) session task(s) failed; first: \(first)") }
        let expected = result.sessions * result.messagesPerSession
        if result.errors.isEmpty, result.latency.count != expected {
            failures.append("sample_count \(result.latency.count) != sessions × messages \(expected)")
        }
        if result.errors.isEmpty {
            if !result.passesLatencyBudget {
                failures.append("p95 \(LatencySummary.milliseconds(result.latency.p95)) ms exceeds the budget \(result.p95BudgetMilliseconds) ms")
            }
            if !result.passesBackpressureBudget {
                failures.append(
                    "backpressure: outboundSendFailures \(result.counters.outboundSendFailures), slowConsumerDisconnects \(result.counters.slowConsumerDisconnects)")
            }
            if !result.passesAuthBudget { failures.append("wsAuthFailures \(result.counters.wsAuthFailures)") }
        }
        return failures
    }

    private static func runSession(
        index: Int, configuration: SessionLoadConfiguration, baseURL: String, phoneBaseURL: String, recorders: [LatencyRecorder]
    ) async throws {
        let desktop = RelayDesktop(baseURL: baseURL)
        let phone = RelayPhone(baseURL: phoneBaseURL, origin: configuration.origin)
        let phoneSocketURL = phoneBaseURL == baseURL ? nil : socketURL(phoneBaseURL)
        let paired = try await RelayPairing.pairConnected(
            desktop: desktop, phone: phone, phoneSocketURL: phoneSocketURL, deviceName: "Load Harness iPhone",
            idleTimeoutSeconds: 1800, timeout: .seconds(30), drainIdle: .milliseconds(1))
        do {
            let desktopSocket = try paired.desktop.socket
            for seq in UInt64(1)...UInt64(configuration.messagesPerSession) {
                let started = ContinuousClock.now
                try await paired.phone.sendCommand(
                    name: "thread.select", commandID: "cmd-\(index)-\(seq)", fields: ["threadID": .string("thread-\(index)")],
                    seq: seq, includeTimestamp: false)
                try await awaitCommand(seq: seq, on: desktopSocket, timeout: configuration.roundTripTimeout)
                let now = ContinuousClock.now
                for recorder in recorders { recorder.record(now - started, at: now) }
            }
        } catch {
            await paired.phone.disconnect()
            await paired.desktop.disconnect()
            throw error
        }
        _ = try? await paired.desktop.stop()
        await paired.phone.disconnect()
        await paired.desktop.disconnect()
    }

    /// Reads the desktop's frames until the command with `seq` arrives; other text frames are
    /// skipped, a non-JSON text frame is an error (§9.1).
    static func awaitCommand(seq: UInt64, on socket: RelayWebSocket, timeout: Duration) async throws {
        try await SteadyState.awaitText(on: socket, timeout: timeout, what: "command seq \(seq)") { text in
            let frame = try JSONValue.parse(text)
            return frame["payload"]?["type"]?.stringValue == "command" && frame["seq"]?.uint64Value == seq
        }
    }

    /// `http://host:port` → `ws://host:port/ws`.
    package static func socketURL(_ baseURL: String) -> String {
        (baseURL.hasPrefix("https") ? "wss" + baseURL.dropFirst(5) : "ws" + baseURL.dropFirst(4)) + "/ws"
    }

    static func ms(_ micros: Int) -> String { String(format: "%.2f", Double(micros) / 1000) }
}

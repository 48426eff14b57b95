// Connection scale: N authenticated idle sockets held on one relay, and what each costs it in
// resident memory.

import Foundation
import RelayTestClient
import Synchronization

/// Configuration of the scale mode.
package struct ScaleConfiguration: Sendable {
    package var sockets = 20_000
    package var setupConcurrency = 64
    /// How long the sockets are held idle (heartbeats keep flowing) before they are counted again.
    package var hold: Duration = .seconds(10)
    package var budgetBytesPerSocket = 8 * 1024
    package var common = ModeConfiguration()

    package init() {}

    /// `RELAY_LOAD_SOCKETS`, `RELAY_LOAD_SETUP_CONCURRENCY`, `RELAY_LOAD_HOLD_S`,
    /// `RELAY_LOAD_MAX_BYTES_PER_SOCKET` and the common variables.
    package init(environment: HarnessEnvironment) {
        sockets = environment.positiveInt("RELAY_LOAD_SOCKETS", default: sockets)
        setupConcurrency = environment.positiveInt("RELAY_LOAD_SETUP_CONCURRENCY", default: setupConcurrency)
        hold = .seconds(environment.positiveInt("RELAY_LOAD_HOLD_S", default: 10))
        budgetBytesPerSocket = environment.positiveInt("RELAY_LOAD_MAX_BYTES_PER_SOCKET", default: budgetBytesPerSocket)
        common = ModeConfiguration(environment: environment, mode: "scale")
    }
}

/// The scale mode: one desktop socket per session (`/pair/start`, connect, `relay.auth`), all
/// held at once. Latency samples are each socket's setup time (start + connect + auth).
package enum Scale {
    /// Limits a local relay needs to admit `sockets` authenticated sockets from one address.
    package static func relayOverrides(sockets: Int) -> [String: String] {
        ["MAX_ACTIVE_WEBSOCKET_CONNECTIONS": "\(sockets + 1000)", "MAX_PAIR_REQUESTS_PER_MINUTE": "10000000"]
    }

    package static func run(_ configuration: ScaleConfiguration, relay: RelayUnderTest) async -> LoadResult {
        let baseline = relay.pids.first.flatMap { ProcessUsage.of(pid: $0) }
        let accounting = RunAccounting(relayPIDs: relay.pids)
        let recorder = LatencyRecorder()
        let desktops = Locked<[RelayDesktop]>([])
        let progress = ProgressReporter(label: "scale", enabled: configuration.common.progress) {
            let rss = relay.pids.first.flatMap { ProcessUsage.of(pid: $0) }.map { "\($0.residentBytes / 1_048_576) MiB" } ?? "n/a"
            return "sockets \(recorder.count)/\(configuration.sockets) relay rss \(rss)"
        }
        let failures = await forEachConcurrently(count: configuration.sockets, width: configuration.setupConcurrency) { _ in
            let started = ContinuousClock.now
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            let start = try await desktop.startPairing(idleTimeoutSeconds: 1800)
            guard start.status == 200 else {
                throw RelayClientError.unexpectedStatus(operation: "POST /pair/start", status: start.status, body: start.bodyText)
            }
            try await desktop.connect()
            recorder.record(ContinuousClock.now - started)
            desktops.withLock { $0.append(desktop) }
        }
        var errors = failures.prefix(20).map { "socket \($0.0): \($0.1)" }
        if failures.count > 20 { errors.append("… and \(failures.count - 20) more socket failures") }

        // Let allocations settle, then read the relay's memory with every socket held.
        try? await Task.sleep(for: .seconds(2))
        let held = relay.pids.first.flatMap { ProcessUsage.of(pid: $0) }
        let metrics = try? await relay.metrics()
        let authenticated = metrics?["activeWebSockets"]?.intValue
        try? await Task.sleep(for: configuration.hold)
        let all = desktops.withLock { $0 }
        let stillOpen = all.filter { $0.currentSocket?.isOpen == true }.count
        if stillOpen < all.count { errors.append("\(all.count - stillOpen) of \(all.count) sockets closed while idle") }
        progress.stop()
        let usage = accounting.snapshot()
        let counters = (try? await relay.counters()) ?? RelayCounters()
        _ = await forEachConcurrently(count: all.count, width: 256) { index in await all[index].disconnect() }

        let perSocket: Double? = {
            guard let baseline, let held, !all.isEmpty else { return nil }
            return Double(held.residentBytes - baseline.residentBytes) / Double(all.count)
        }()
        var extra = relay.relayMembers
        extra += [
            ("sockets_requested", .int(configuration.sockets)),
            ("sockets_held", .int(all.count)),
            ("sockets_open_after_hold", .int(stillOpen)),
            ("relay_active_websockets", .optionalInt(authenticated)),
            ("hold_s", .number(configuration.hold.seconds)),
            ("relay_baseline_memory_bytes", .optionalInt(baseline?.residentBytes)),
            ("relay_memory_with_sockets_bytes", .optionalInt(held?.residentBytes)),
            ("relay_memory_per_socket_bytes", .number(perSocket, places: 0)),
            ("memory_per_socket_budget_bytes", .int(configuration.budgetBytesPerSocket)),
            ("passes_memory_budget", .bool(errors.isEmpty && (perSocket.map { $0 < Double(configuration.budgetBytesPerSocket) } ?? false))),
            ("open_file_limit", .int(MachineFacts.openFileLimit)),
        ]
        return LoadResult(
            mode: "scale", baseURL: relay.baseURL, origin: configuration.common.origin, sessions: configuration.sockets,
            messagesPerSession: 0, latency: recorder.summary, p95BudgetMilliseconds: 1000, counters: counters,
            errors: errors, usage: usage, extra: extra, timeline: recorder.timeline)
    }
}

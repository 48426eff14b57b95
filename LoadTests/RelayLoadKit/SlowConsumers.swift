// Slow consumers: a share of phones stop reading while desktops keep streaming to every phone.
// The relay must cut the stalled phones off (bounded queues) and the other phones' latency must
// not move.

import Foundation
import RelayTestClient
import Synchronization

/// Configuration of the slow-consumer mode.
package struct SlowConsumerConfiguration: Sendable {
    package var sessions = 40
    /// The share of phones that stop reading.
    package var slowShare = 0.25
    /// Events per second per desktop.
    package var rate = 20
    /// Events per second the desktops of stalled phones send once they stall (a transcript burst):
    /// it backs the relay's writes up within seconds instead of minutes.
    package var burstRate = 200
    package var payloadBytes = 16 * 1024
    /// Length of each phase: everyone reading, then some phones stalled.
    package var phase: Duration = .seconds(15)
    package var setupConcurrency = 16
    package var common = ModeConfiguration()

    package init() {}

    /// `RELAY_LOAD_SESSIONS`, `RELAY_LOAD_SLOW_SHARE`, `RELAY_LOAD_RATE`, `RELAY_LOAD_SLOW_BURST_RATE`, `RELAY_LOAD_PAYLOAD_BYTES`,
    /// `RELAY_LOAD_PHASE_S`, `RELAY_LOAD_SETUP_CONCURRENCY` and the common variables.
    package init(environment: HarnessEnvironment) {
        sessions = environment.positiveInt("RELAY_LOAD_SESSIONS", default: sessions)
        slowShare = min(1, environment.positiveDouble("RELAY_LOAD_SLOW_SHARE", default: slowShare))
        rate = environment.positiveInt("RELAY_LOAD_RATE", default: rate)
        burstRate = environment.positiveInt("RELAY_LOAD_SLOW_BURST_RATE", default: burstRate)
        payloadBytes = environment.positiveInt("RELAY_LOAD_PAYLOAD_BYTES", default: payloadBytes)
        phase = .seconds(environment.positiveInt("RELAY_LOAD_PHASE_S", default: 15))
        setupConcurrency = environment.positiveInt("RELAY_LOAD_SETUP_CONCURRENCY", default: setupConcurrency)
        common = ModeConfiguration(environment: environment, mode: "slow-consumers")
    }
}

/// The slow-consumer mode. Samples are the reading phones' desktop→phone latencies in the stalled
/// phase; the calm phase's figures are reported beside them as the baseline.
package enum SlowConsumers {
    package static let relayOverrides = ["MAX_WS_MESSAGES_PER_MINUTE": "1000000"]

    /// Reading phones' p99 in the stalled phase may be at most twice the calm phase's plus 1 ms.
    package static func isolated(calm: LatencySummary, stalled: LatencySummary) -> Bool {
        stalled.count > 0 && stalled.p99 <= 2 * calm.p99 + 1000
    }

    package static func run(_ configuration: SlowConsumerConfiguration, relay: RelayUnderTest) async -> LoadResult {
        var errors: [String] = []
        let sessions = await relay.pairSessions(
            count: configuration.sessions, width: configuration.setupConcurrency, origin: configuration.common.origin,
            errors: &errors)
        let slowCount = Int((Double(sessions.count) * configuration.slowShare).rounded())
        // Stalled phones get a small receive buffer so the relay's writes back up within seconds.
        for session in sessions.prefix(slowCount) {
            do {
                await session.phone.disconnect()
                try await session.phone.connect(receiveBufferSize: 4096)
            } catch {
                errors.append("reconnecting a slow phone: \(error)")
            }
        }
        let countersBefore = (try? await relay.counters()) ?? RelayCounters()
        let accounting = RunAccounting(relayPIDs: relay.pids)
        let start = ContinuousClock.now
        let stallAt = start + configuration.phase
        let end = stallAt + configuration.phase
        let calm = LatencyRecorder(started: start)
        let stalled = LatencyRecorder(started: start)
        let all = LatencyRecorder(started: start)
        let cutOff = Counter()
        // When the relay's slowConsumerDisconnects says every stalled phone is cut off; the
        // bursts stop then.
        let allCutOffAt = Locked<ContinuousClock.Instant?>(nil)
        let failures = Locked<[String]>([])
        let progress = ProgressReporter(label: "slow-consumers", enabled: configuration.common.progress) {
            "\(ContinuousClock.now < stallAt ? "calm" : "stalled") phase: calm p99 \(SessionLoad.ms(calm.summary.p99)) ms,"
                + " stalled p99 \(SessionLoad.ms(stalled.summary.p99)) ms, slow phones cut off \(cutOff.value)/\(slowCount)"
        }
        if errors.isEmpty {
            let padding = String(repeating: "x", count: configuration.payloadBytes)
            let interval = Duration.seconds(1 / Double(configuration.rate))
            let burstInterval = Duration.seconds(1 / Double(configuration.burstRate))
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    try? await Task.sleep(until: stallAt, clock: .continuous)
                    while ContinuousClock.now < end, slowCount > 0 {
                        if let counters = try? await relay.counters(),
                            counters.slowConsumerDisconnects - countersBefore.slowConsumerDisconnects >= slowCount
                        {
                            allCutOffAt.withLock { $0 = .now }
                            return
                        }
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                }
                for (index, session) in sessions.enumerated() {
                    let slow = index < slowCount
                    let offset = interval * (Double(index) / Double(sessions.count))
                    group.addTask {
                        // The desktop: events with its send time, until the end. A stalled phone's
                        // desktop keeps sending; the relay must not let that hurt anyone else.
                        var seq: UInt64 = 0
                        var due = start + offset
                        do {
                            while due < end {
                                try await Task.sleep(until: due, clock: .continuous)
                                seq += 1
                                let sentAt = (ContinuousClock.now - start).microseconds
                                try await session.desktop.sendEvent(seq: seq, payload: ["sentAtUs": .int(Int64(sentAt)), "pad": .string(padding)])
                                let bursting = slow && due >= stallAt && allCutOffAt.withLock { $0 == nil }
                                due = due + (bursting ? burstInterval : interval)
                            }
                        } catch {
                            failures.withLock { $0.append("desktop \(index): \(error)") }
                        }
                    }
                    group.addTask {
                        do {
                            let socket = try session.phone.socket
                            if slow {
                                try await Task.sleep(until: stallAt, clock: .continuous)
                                try await socket.pauseReading()
                                try await Task.sleep(until: end, clock: .continuous)
                                try await socket.resumeReading()
                                // What the relay did to a stalled reader: it must have closed it.
                                let closed = (try? await socket.waitForClosed(timeout: .seconds(5))) != nil
                                if closed { cutOff.increment() }
                                return
                            }
                            while true {
                                let remaining = end + .seconds(2) - ContinuousClock.now
                                guard remaining > .zero, let event = try await socket.next(timeout: remaining) else { break }
                                guard case .text(let text) = event else {
                                    if case .closed = event { throw RelayClientError.connectionClosed("reading phone \(index) was disconnected") }
                                    continue
                                }
                                let now = ContinuousClock.now
                                guard let frame = try? JSONValue.parse(text), let sentAt = frame["payload"]?["sentAtUs"]?.intValue else { continue }
                                let latency = (now - start) - .microseconds(sentAt)
                                let sentInstant = start + .microseconds(sentAt)
                                all.record(latency, at: now)
                                // The first second after the stall is a transition; leave it out of both phases.
                                if sentInstant < stallAt {
                                    calm.record(latency, at: now)
                                } else if sentInstant >= stallAt + .seconds(1) {
                                    stalled.record(latency, at: now)
                                }
                            }
                        } catch {
                            failures.withLock { $0.append("phone \(index): \(error)") }
                        }
                    }
                }
            }
        }
        progress.stop()
        let usage = accounting.snapshot()
        errors += failures.withLock { $0 }
        let countersAfter = (try? await relay.counters()) ?? RelayCounters()
        for session in sessions {
            _ = try? await session.desktop.stop()
            await session.phone.disconnect()
            await session.desktop.disconnect()
        }
        let calmSummary = calm.summary
        let stalledSummary = stalled.summary
        let disconnects = countersAfter.slowConsumerDisconnects - countersBefore.slowConsumerDisconnects
        var extra = relay.relayMembers
        extra += [
            ("slow_phones", .int(slowCount)),
            ("reading_phones", .int(sessions.count - slowCount)),
            ("slow_phones_cut_off", .int(cutOff.value)),
            ("slow_consumer_disconnects_during_run", .int(disconnects)),
            ("event_rate_per_desktop", .int(configuration.rate)),
            ("stalled_desktop_burst_rate", .int(configuration.burstRate)),
            ("time_to_cut_off_ms", .optionalInt(allCutOffAt.withLock { $0 }.map { ($0 - stallAt).microseconds / 1000 })),
            ("payload_bytes", .int(configuration.payloadBytes)),
            ("phase_s", .number(configuration.phase.seconds)),
            ("calm_p50_latency_us", .int(calmSummary.p50)),
            ("calm_p99_latency_us", .int(calmSummary.p99)),
            ("stalled_p50_latency_us", .int(stalledSummary.p50)),
            ("stalled_p99_latency_us", .int(stalledSummary.p99)),
            // The stalled phase split at the moment the relay had cut every stalled phone off:
            // while the bursts ran, and after.
            ("stalled_after_cut_off_p99_latency_us", .optionalInt(allCutOffAt.withLock { $0 }.map { stalled.summary(since: $0 - start).p99 })),
            ("passes_isolation", .bool(errors.isEmpty && cutOff.value == slowCount && isolated(calm: calmSummary, stalled: stalledSummary))),
        ]
        return LoadResult(
            mode: "slow-consumers", baseURL: relay.baseURL, origin: configuration.common.origin, sessions: sessions.count,
            messagesPerSession: Int(configuration.phase.seconds * 2) * configuration.rate, latency: stalledSummary,
            p95BudgetMilliseconds: 750, counters: countersAfter, errors: errors, usage: usage, extra: extra, timeline: all.timeline)
    }
}

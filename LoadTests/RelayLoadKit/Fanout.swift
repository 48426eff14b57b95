// Fan-out: one desktop's events delivered to many phones of the same session.

import Foundation
import RelayTestClient
import Synchronization

/// Configuration of the fan-out mode.
package struct FanoutConfiguration: Sendable {
    package var phones = 100
    package var messages = 200
    /// Events per second the desktop sends.
    package var rate = 20
    package var payloadBytes = 256
    package var common = ModeConfiguration()

    package init() {}

    /// `RELAY_LOAD_PHONES`, `RELAY_LOAD_MESSAGES`, `RELAY_LOAD_RATE`, `RELAY_LOAD_PAYLOAD_BYTES` and
    /// the common variables.
    package init(environment: HarnessEnvironment) {
        phones = environment.positiveInt("RELAY_LOAD_PHONES", default: phones)
        messages = environment.positiveInt("RELAY_LOAD_MESSAGES", default: messages)
        rate = environment.positiveInt("RELAY_LOAD_RATE", default: rate)
        payloadBytes = environment.positiveInt("RELAY_LOAD_PAYLOAD_BYTES", default: payloadBytes)
        common = ModeConfiguration(environment: environment, mode: "fanout")
    }
}

/// The fan-out mode. Samples are per delivery (event sent → one phone read it); the time until the
/// last phone has an event is reported as `event_complete_*`.
package enum Fanout {
    /// A local relay must admit `phones` devices on one session.
    package static func relayOverrides(phones: Int) -> [String: String] {
        ["MAX_DEVICES_PER_SESSION": "\(phones)", "MAX_WS_MESSAGES_PER_MINUTE": "1000000", "MAX_PAIR_REQUESTS_PER_MINUTE": "1000000"]
    }

    package static func run(_ configuration: FanoutConfiguration, relay: RelayUnderTest) async -> LoadResult {
        let session = await SessionWithPhones.pair(
            relay: relay, phones: configuration.phones, origin: configuration.common.origin, deviceName: "Load Harness iPhone")
        var errors = session.failure.map { [$0] } ?? []
        let phones = session.phones

        let recorder = LatencyRecorder()
        let sentAt = Locked<[UInt64: ContinuousClock.Instant]>([:])
        let lastArrival = Locked<[UInt64: ContinuousClock.Instant]>([:])
        let failures = Locked<[String]>([])
        let accounting = RunAccounting(relayPIDs: relay.pids)
        let progress = ProgressReporter(label: "fanout", enabled: configuration.common.progress) {
            "deliveries \(recorder.count)/\(configuration.phones * configuration.messages)"
        }
        let pairedPhones = phones
        if errors.isEmpty {
            let interval = Duration.seconds(1 / Double(configuration.rate))
            await withTaskGroup(of: Void.self) { group in
                for (index, phone) in pairedPhones.enumerated() {
                    group.addTask {
                        do {
                            let socket = try phone.socket
                            var received = 0
                            let deadline = ContinuousClock.now + interval * Double(configuration.messages) + .seconds(10)
                            while received < configuration.messages {
                                let text = try await socket.nextText(timeout: max(deadline - .now, .zero))
                                let now = ContinuousClock.now
                                let frame = try JSONValue.parse(text)
                                guard frame["payload"]?["type"]?.stringValue == "event", let seq = frame["seq"]?.uint64Value,
                                    let sent = sentAt.withLock({ $0[seq] })
                                else { continue }
                                recorder.record(now - sent, at: now)
                                lastArrival.withLock { $0[seq] = max($0[seq] ?? now, now) }
                                received += 1
                            }
                        } catch {
                            failures.withLock { $0.append("phone \(index): \(error)") }
                        }
                    }
                }
                group.addTask {
                    do {
                        try await session.streamEvents(count: configuration.messages, rate: configuration.rate, payloadBytes: configuration.payloadBytes) { seq in
                            sentAt.withLock { $0[seq] = .now }
                        }
                    } catch {
                        failures.withLock { $0.append("desktop: \(error)") }
                    }
                }
            }
        }
        progress.stop()
        let usage = accounting.snapshot()
        errors += failures.withLock { $0 }
        let counters = (try? await relay.counters()) ?? RelayCounters()
        await session.close()

        let sent = sentAt.withLock { $0 }
        let complete = LatencySummary(samples: lastArrival.withLock { arrivals in
            arrivals.compactMap { seq, last in sent[seq].map { Swift.max(1, (last - $0).microseconds) } }
        })
        var extra = relay.relayMembers
        extra += [
            ("phones", .int(phones.count)),
            ("events", .int(configuration.messages)),
            ("event_rate", .int(configuration.rate)),
            ("payload_bytes", .int(configuration.payloadBytes)),
            ("deliveries", .int(recorder.count)),
            ("deliveries_per_second", .number(Double(recorder.count) / Swift.max(usage.wallSeconds, 0.001), places: 1)),
            ("event_complete_p50_us", .int(complete.p50)),
            ("event_complete_p95_us", .int(complete.p95)),
            ("event_complete_p99_us", .int(complete.p99)),
            ("event_complete_max_us", .int(complete.max)),
        ]
        return LoadResult(
            mode: "fanout", baseURL: relay.baseURL, origin: configuration.common.origin, sessions: 1,
            messagesPerSession: configuration.messages, latency: recorder.summary, p95BudgetMilliseconds: 750,
            counters: counters, errors: errors, usage: usage, extra: extra, timeline: recorder.timeline)
    }
}

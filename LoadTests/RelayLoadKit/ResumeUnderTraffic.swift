// Resume under traffic: phones that keep dropping and resuming while their desktop streams events.

import Foundation
import RelayLocalCluster
import RelayTestClient
import Synchronization

/// Configuration of the resume mode (extension 11).
package struct ResumeConfiguration: Sendable {
    package var phones = 8
    package var messages = 2000
    /// Events per second the desktop sends.
    package var rate = 200
    /// A phone drops after reading this many envelopes (± half, at random), stays away `awayMillis`.
    package var dropEvery = 100
    package var awayMillis = 50
    package var payloadBytes = 256
    /// `RELAY_LOAD_CLUSTER`: two local nodes with Redis and NATS; the desktop on one, every phone
    /// reconnecting and resuming through the other.
    package var cluster = false
    /// `RELAY_LOAD_HISTORY_MAX_FRAMES`: the relays' `HISTORY_MAX_FRAMES` (unset: their default);
    /// `0` with a `RELAY_LOAD_DROP_EVERY` above the message count measures forwarding without history.
    package var historyMaxFrames: Int?
    package var common = ModeConfiguration()

    package init() {}

    /// `RELAY_LOAD_PHONES`, `RELAY_LOAD_MESSAGES`, `RELAY_LOAD_RATE`, `RELAY_LOAD_DROP_EVERY`,
    /// `RELAY_LOAD_AWAY_MS`, `RELAY_LOAD_PAYLOAD_BYTES` and the common variables.
    package init(environment: HarnessEnvironment) {
        phones = environment.positiveInt("RELAY_LOAD_PHONES", default: phones)
        messages = environment.positiveInt("RELAY_LOAD_MESSAGES", default: messages)
        rate = environment.positiveInt("RELAY_LOAD_RATE", default: rate)
        dropEvery = environment.positiveInt("RELAY_LOAD_DROP_EVERY", default: dropEvery)
        awayMillis = environment.positiveInt("RELAY_LOAD_AWAY_MS", default: awayMillis)
        payloadBytes = environment.positiveInt("RELAY_LOAD_PAYLOAD_BYTES", default: payloadBytes)
        cluster = environment.bool("RELAY_LOAD_CLUSTER", default: false)
        historyMaxFrames = environment.string("RELAY_LOAD_HISTORY_MAX_FRAMES").flatMap { Int($0) }
        common = ModeConfiguration(environment: environment, mode: cluster ? "resume-cluster" : "resume")
    }
}

/// What one phone saw: every `seq` checked against the one it expected.
struct ResumeTally: Sendable {
    var received = 0
    var lost = 0
    var duplicated = 0
    var reordered = 0
    var resumes = 0
    var incomplete = 0
    /// Envelopes that came live after `auth_ok` and before the replay.
    var liveBeforeReplay = 0
    var last: UInt64 = 0
    var seen: Set<UInt64> = []

    mutating func observe(_ seq: UInt64) {
        received += 1
        if seen.contains(seq) {
            duplicated += 1
            return
        }
        seen.insert(seq)
        if seq < last {
            reordered += 1
            return
        }
        if seq > last &+ 1 { lost += Int(seq - last - 1) }
        last = seq
    }
}

/// The resume mode: one desktop streams `messages` events; each phone drops after about
/// `dropEvery` envelopes, stays away `awayMillis`, reconnects with its rotated token and sends
/// `relay.resume` with the last `seq` it processed. Every phone must end with every `seq` exactly
/// once and in order: lost, duplicated and reordered envelopes are counted per phone, with the
/// resumes, how many were incomplete, and the time from `relay.resume` to `relay.resumed`.
package enum ResumeUnderTraffic {
    /// A local relay must admit the phones on one session and their reconnections and resumes.
    package static func relayOverrides(_ configuration: ResumeConfiguration) -> [String: String] {
        var overrides = [
            "MAX_DEVICES_PER_SESSION": "\(configuration.phones)", "MAX_WS_MESSAGES_PER_MINUTE": "1000000",
            "MAX_PAIR_REQUESTS_PER_MINUTE": "1000000", "MAX_SNAPSHOT_REQUESTS_PER_MINUTE": "1000000",
            "MAX_WS_AUTH_FAILURES_PER_MINUTE": "1000000",
        ]
        if let frames = configuration.historyMaxFrames { overrides["HISTORY_MAX_FRAMES"] = "\(frames)" }
        return overrides
    }

    /// The cluster variant: starts Redis, NATS and two nodes on loopback, runs, stops them.
    package static func runOnCluster(_ configuration: ResumeConfiguration) async throws -> LoadResult {
        let cluster = try await LocalCluster.start(
            nodes: 2, redis: .local(), nats: .local(),
            environment: relayOverrides(configuration).merging(["ALLOWED_ORIGINS": configuration.common.origin]) { $1 })
        let relay = RelayUnderTest(baseURL: cluster.baseURL(0), pids: [cluster.pid(0), cluster.pid(1)])
        let result = await run(configuration, relay: relay, phoneSocketURL: cluster.socketURL(1))
        _ = await cluster.shutdown()
        return result
    }

    package static func run(_ configuration: ResumeConfiguration, relay: RelayUnderTest, phoneSocketURL: String? = nil) async -> LoadResult {
        let session = await SessionWithPhones.pair(
            relay: relay, phones: configuration.phones, origin: configuration.common.origin, deviceName: "Resume Harness iPhone",
            phoneSocketURL: phoneSocketURL)
        var errors = session.failure.map { [$0] } ?? []
        let phones = session.phones

        let resumeLatency = LatencyRecorder()
        let tallies = Locked<[Int: ResumeTally]>([:])
        let failures = Locked<[String]>([])
        let accounting = RunAccounting(relayPIDs: relay.pids)
        let progress = ProgressReporter(label: "resume", enabled: configuration.common.progress) {
            "resumes \(resumeLatency.count), envelopes \(tallies.withLock { $0.values.reduce(0) { $0 + $1.received } })"
        }
        let paired = phones
        let total = UInt64(configuration.messages)
        if errors.isEmpty {
            let interval = Duration.seconds(1 / Double(configuration.rate))
            let deadline = ContinuousClock.now + interval * Double(configuration.messages) + .seconds(60)
            await withTaskGroup(of: Void.self) { group in
                for (index, phone) in paired.enumerated() {
                    group.addTask {
                        var tally = ResumeTally()
                        var rng = SystemRandomNumberGenerator()
                        var untilDrop = Int.random(in: (configuration.dropEvery / 2)...(configuration.dropEvery * 3 / 2), using: &rng)
                        do {
                            while tally.seen.count < Int(total) {
                                guard ContinuousClock.now < deadline else {
                                    throw RelayClientError.timedOut("phone \(index) has \(tally.seen.count) of \(total) envelopes")
                                }
                                let text = try await phone.socket.nextText(timeout: max(deadline - .now, .zero))
                                let frame = try JSONValue.parse(text)
                                guard frame["payload"]?["type"]?.stringValue == "event", let seq = frame["seq"]?.uint64Value else { continue }
                                tally.observe(seq)
                                untilDrop -= 1
                                guard untilDrop <= 0, tally.last < total else { continue }
                                // Away, back with the rotated token, and resumed from the last envelope processed.
                                untilDrop = Int.random(in: (configuration.dropEvery / 2)...(configuration.dropEvery * 3 / 2), using: &rng)
                                await phone.disconnect()
                                try await Task.sleep(for: .milliseconds(configuration.awayMillis))
                                _ = try await phone.connect(url: phoneSocketURL)
                                let sessionID = phone.sessionID ?? ""
                                let asked = ContinuousClock.now
                                try await phone.socket.sendText(
                                    JSONValue.object(["type": "relay.resume", "sessionID": .string(sessionID), "lastSeq": .int(tally.last)])
                                        .serialized)
                                tally.resumes += 1
                                // Envelopes sent live between auth_ok and the resume's arrival come
                                // before the replay (which skips them): as the client library does,
                                // the phone applies what it got up to `relay.resumed` in seq order.
                                var arrived: [UInt64] = []
                                while true {
                                    let reply = try await phone.socket.nextText(timeout: max(deadline - .now, .zero))
                                    let json = try JSONValue.parse(reply)
                                    if json.type == "relay.resumed" {
                                        resumeLatency.record(.now - asked)
                                        if json["complete"]?.boolValue != true { tally.incomplete += 1 }
                                        break
                                    }
                                    if json["payload"]?["type"]?.stringValue == "event", let seq = json["seq"]?.uint64Value { arrived.append(seq) }
                                }
                                // Two runs, each in order: the live one, then the replay ending below it.
                                let split = arrived.indices.dropFirst().first { arrived[$0] < arrived[$0 - 1] } ?? arrived.count
                                let liveRun = arrived[..<split], replayRun = arrived[split...]
                                for run in [liveRun, replayRun] {
                                    for (earlier, later) in zip(run, run.dropFirst()) where later <= earlier { tally.reordered += 1 }
                                }
                                if let lastReplayed = replayRun.last, let firstLive = liveRun.first, lastReplayed >= firstLive { tally.reordered += 1 }
                                if !replayRun.isEmpty { tally.liveBeforeReplay += liveRun.count }
                                for seq in arrived.sorted() { tally.observe(seq) }
                            }
                        } catch {
                            failures.withLock { $0.append("phone \(index): \(error)") }
                        }
                        let final = tally
                        tallies.withLock { $0[index] = final }
                    }
                }
                group.addTask {
                    do {
                        try await session.streamEvents(count: configuration.messages, rate: configuration.rate, payloadBytes: configuration.payloadBytes)
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

        let final = tallies.withLock { $0 }
        let lost = final.values.reduce(0) { $0 + $1.lost }
        let duplicated = final.values.reduce(0) { $0 + $1.duplicated }
        let reordered = final.values.reduce(0) { $0 + $1.reordered }
        let resumes = final.values.reduce(0) { $0 + $1.resumes }
        let incomplete = final.values.reduce(0) { $0 + $1.incomplete }
        let perPhone: [ArtifactJSON] = final.keys.sorted().map { index in
            let t = final[index]!
            return .object([
                ("phone", .int(index)), ("envelopes", .int(t.seen.count)), ("lost", .int(t.lost)), ("duplicated", .int(t.duplicated)),
                ("reordered", .int(t.reordered)), ("resumes", .int(t.resumes)), ("incomplete", .int(t.incomplete)),
            ])
        }
        let latency = resumeLatency.summary
        var extra = relay.relayMembers
        extra += [
            ("phones", .int(phones.count)),
            ("phones_resume_on_another_node", .bool(phoneSocketURL != nil)),
            ("events", .int(configuration.messages)),
            ("event_rate", .int(configuration.rate)),
            ("drop_every", .int(configuration.dropEvery)),
            ("away_ms", .int(configuration.awayMillis)),
            ("resumes", .int(resumes)),
            ("incomplete_resumes", .int(incomplete)),
            ("live_before_replay", .int(final.values.reduce(0) { $0 + $1.liveBeforeReplay })),
            ("lost", .int(lost)),
            ("duplicated", .int(duplicated)),
            ("reordered", .int(reordered)),
            ("resume_p50_us", .int(latency.p50)),
            ("resume_p99_us", .int(latency.p99)),
            ("resume_max_us", .int(latency.max)),
            ("per_phone", .array(perPhone)),
            ("history_max_frames", configuration.historyMaxFrames.map { .int($0) } ?? .null),
            ("relay_cpu_us_per_event", .number(usage.relayCPUSeconds.map { $0 * 1_000_000 / Double(Swift.max(configuration.messages, 1)) } ?? 0, places: 2)),
            ("passes_no_loss", .bool(
                errors.isEmpty && lost == 0 && duplicated == 0 && reordered == 0 && incomplete == 0
                    && (resumes > 0 || configuration.dropEvery >= configuration.messages))),
        ]
        return LoadResult(
            mode: phoneSocketURL == nil ? "resume" : "resume-cluster", baseURL: relay.baseURL, origin: configuration.common.origin, sessions: 1,
            messagesPerSession: configuration.messages, latency: latency, p95BudgetMilliseconds: 750,
            counters: counters, errors: errors, usage: usage, extra: extra, timeline: resumeLatency.timeline)
    }
}

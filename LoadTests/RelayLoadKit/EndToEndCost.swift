// Extension 12's costs in one run: the client's CPU to seal and to open one envelope, and the
// relay's CPU per forwarded sealed frame against the same content in plaintext, alternating.

import Crypto
import Foundation
import RelayClient
import RelayProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Configuration of the e2e mode.
package struct EndToEndCostConfiguration: Sendable {
    package var common = ModeConfiguration()
    package var sessions = 20
    package var setupConcurrency = 4
    /// Alternating plaintext and sealed rounds; the medians are compared.
    package var rounds = 3
    /// Round trips per session per run: enough messages that the relay's CPU, read from /proc in
    /// 10 ms ticks, is measured to about 1 %.
    package var steadyRoundTrips = 2000
    /// Envelopes sealed and opened per payload size for the client's figures.
    package var cryptoMessages = 20_000
    package var roundTripTimeout: Duration = .seconds(10)

    package init() {}

    /// `RELAY_LOAD_SESSIONS`, `RELAY_LOAD_SETUP_CONCURRENCY`, `RELAY_LOAD_ROUNDS`,
    /// `RELAY_LOAD_STEADY_ROUND_TRIPS`, `RELAY_LOAD_CRYPTO_MESSAGES`, and the common variables.
    package init(environment: HarnessEnvironment) {
        common = ModeConfiguration(environment: environment, mode: "e2e")
        sessions = environment.positiveInt("RELAY_LOAD_SESSIONS", default: sessions)
        setupConcurrency = environment.positiveInt("RELAY_LOAD_SETUP_CONCURRENCY", default: setupConcurrency)
        rounds = environment.positiveInt("RELAY_LOAD_ROUNDS", default: rounds)
        steadyRoundTrips = environment.positiveInt("RELAY_LOAD_STEADY_ROUND_TRIPS", default: steadyRoundTrips)
        cryptoMessages = environment.positiveInt("RELAY_LOAD_CRYPTO_MESSAGES", default: cryptoMessages)
    }
}

/// The e2e mode.
package enum EndToEndCost {
    /// The CPU one envelope costs a client: sealing (payload to JSON, ChaCha20-Poly1305, base64url)
    /// and opening (base64url, ChaCha20-Poly1305, JSON parse), in µs of this thread's CPU.
    struct ClientCost {
        var plaintextBytes: Int
        var frameBytes: Int
        var sealMicros: Double
        var openMicros: Double
    }

    static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Seals `messages` envelopes of `payload`, then opens them, timing each loop on this thread.
    static func clientCost(payload: JSONValue, messages: Int) throws -> ClientCost {
        let key = SymmetricKey(size: .bits256)
        let sessionID = Identifiers.random(bytes: 16)
        var frames: [String] = []
        frames.reserveCapacity(messages)
        let sealStart = threadCPUSeconds()
        for seq in 1...UInt64(messages) {
            let shell = EnvelopeShell(sessionID: sessionID, seq: seq, timestamp: "2026-12-07T00:00:00.000Z")
            frames.append(shell.envelope(payload: ["type": "sealed", "epoch": 0, "ciphertext": .string(try shell.seal(payload, key: key))]))
        }
        let sealSeconds = threadCPUSeconds() - sealStart
        let parsed = try frames.map { try JSONValue.parse($0) }
        let openStart = threadCPUSeconds()
        for frame in parsed {
            guard let shell = EnvelopeShell(envelope: frame), let ciphertext = frame["payload"]?["ciphertext"]?.stringValue else {
                throw RelayClientError.unexpectedJSON(expected: "a sealed envelope", received: "something else")
            }
            _ = try shell.open(ciphertext, key: key)
        }
        let openSeconds = threadCPUSeconds() - openStart
        return ClientCost(
            plaintextBytes: payload.serialized.utf8.count, frameBytes: frames[0].utf8.count,
            sealMicros: sealSeconds * 1e6 / Double(messages), openMicros: openSeconds * 1e6 / Double(messages))
    }

    package static func run(_ configuration: EndToEndCostConfiguration, relay: RelayUnderTest) async -> LoadResult {
        var errors: [String] = []
        var extra: [(String, ArtifactJSON)] = []

        // The client: a small event (as the steady state sends) and a 4 KiB transcript line.
        let small: JSONValue = ["type": "event", "eventID": "r1-s1-1", "threadID": "thread-1"]
        let large: JSONValue = ["type": "event", "threadID": "thread-1", "text": .string(String(repeating: "transcript line ", count: 256))]
        for (name, payload) in [("small", small), ("4k", large)] {
            do {
                let cost = try clientCost(payload: payload, messages: configuration.cryptoMessages)
                harnessLog(String(format: "[e2e] client, %@ payload (%d B plaintext, %d B frame): seal %.2f µs, open %.2f µs CPU",
                    name, cost.plaintextBytes, cost.frameBytes, cost.sealMicros, cost.openMicros))
                extra += [
                    ("client_\(name)_plaintext_bytes", .int(cost.plaintextBytes)),
                    ("client_\(name)_sealed_frame_bytes", .int(cost.frameBytes)),
                    ("client_\(name)_seal_cpu_us", .double((cost.sealMicros * 100).rounded() / 100)),
                    ("client_\(name)_open_cpu_us", .double((cost.openMicros * 100).rounded() / 100)),
                ]
            } catch {
                errors.append("client cost (\(name)): \(error)")
            }
        }

        // The relay: the same round trips in plaintext and sealed, on the same open sockets.
        let accounting = RunAccounting(relayPIDs: relay.pids)
        let pairs = SteadyStatePair.pairs(of: await relay.pairSessions(
            count: configuration.sessions, width: configuration.setupConcurrency, origin: configuration.common.origin, errors: &errors))
        var figures: [Bool: [Double]] = [:]
        let recorder = LatencyRecorder()
        let key = SymmetricKey(size: .bits256)
        if errors.isEmpty {
            for round in 1...configuration.rounds {
                for sealed in [false, true] {
                    // Each run continues the sockets' seq past the last (the relay's replay guard).
                    let run = (round - 1) * 2 + (sealed ? 1 : 0)
                    let firstSeq = UInt64(run * configuration.steadyRoundTrips + 1)
                    let measured = await SteadyState.measure(
                        pairs: pairs, roundTrips: configuration.steadyRoundTrips, round: run, firstSeq: firstSeq,
                        timeout: configuration.roundTripTimeout, pids: relay.pids, sealingKey: sealed ? key : nil)
                    errors += measured.failures
                    for sample in measured.latency.micros { recorder.record(.microseconds(sample)) }
                    harnessLog(String(format: "[e2e] round %d/%d %@: %.2f µs relay CPU per message",
                        round, configuration.rounds, sealed ? "sealed" : "plaintext", measured.cpuMicrosPerMessage))
                    figures[sealed, default: []].append(measured.cpuMicrosPerMessage)
                }
            }
        }
        for pair in pairs {
            await pair.phone.close()
            await pair.desktop.close()
        }
        let plain = median(figures[false] ?? []) ?? 0, sealed = median(figures[true] ?? []) ?? 0
        extra += [
            ("rounds", .int(configuration.rounds)),
            ("steady_round_trips", .int(configuration.steadyRoundTrips)),
            ("relay_plaintext_cpu_us_per_message", .double((plain * 100).rounded() / 100)),
            ("relay_sealed_cpu_us_per_message", .double((sealed * 100).rounded() / 100)),
            ("relay_sealed_to_plaintext_cpu_ratio", .double(plain > 0 ? (sealed / plain * 100).rounded() / 100 : 0)),
        ]
        return LoadResult(
            mode: "e2e", baseURL: relay.baseURL, origin: configuration.common.origin, sessions: configuration.sessions,
            messagesPerSession: configuration.steadyRoundTrips * configuration.rounds * 2, latency: recorder.summary,
            p95BudgetMilliseconds: 1000, errors: errors, usage: accounting.snapshot(), extra: extra)
    }
}

// Steady-state round trips over sockets that are already open: the phone sends a command, the
// desktop echoes an event, the phone reads it. Two forwarded messages per round trip, no setup in
// the measured window, so the CPU a relay spends in it is its cost per forwarded message.

import Crypto
import Foundation
import RelayClient
import RelayProtocol
import RelayTestClient

/// One session's two open sockets and the texts they exchange.
package struct SteadyStatePair: Sendable {
    package let index: Int
    package let phone: RelayWebSocket
    package let desktop: RelayWebSocket
    /// The relay's session id; the floor accepts any.
    package let sessionID: String

    package init(index: Int, phone: RelayWebSocket, desktop: RelayWebSocket, sessionID: String) {
        self.index = index
        self.phone = phone
        self.desktop = desktop
        self.sessionID = sessionID
    }

    /// The open sockets of each paired session, in order.
    static func pairs(of sessions: [RelayPairedSession]) -> [SteadyStatePair] {
        sessions.enumerated().compactMap { index, session in
            guard let phone = try? session.phone.socket, let desktop = try? session.desktop.socket else { return nil }
            return SteadyStatePair(index: index, phone: phone, desktop: desktop, sessionID: session.desktop.sessionID)
        }
    }

    /// A phone command envelope as the §9.1 harness sends it (no timestamp), about 170 bytes.
    func command(seq: UInt64, round: Int) -> (text: String, marker: String) {
        let marker = "\"commandID\":\"r\(round)-s\(index)-\(seq)\""
        return (
            "{\"schemaVersion\":2,\"sessionID\":\"\(sessionID)\",\"seq\":\(seq),\"payload\":{\"type\":\"command\","
                + "\"payload\":{\"name\":\"thread.select\",\(marker),\"threadID\":\"thread-\(index)\"}}}",
            marker
        )
    }

    /// The desktop's echo: an event envelope about the same size.
    func event(seq: UInt64, round: Int) -> (text: String, marker: String) {
        let marker = "\"eventID\":\"r\(round)-s\(index)-\(seq)\""
        return (
            "{\"schemaVersion\":2,\"sessionID\":\"\(sessionID)\",\"seq\":\(seq),\"timestamp\":\"2026-12-07T00:00:00.000Z\","
                + "\"payload\":{\"type\":\"event\",\(marker),\"threadID\":\"thread-\(index)\"}}",
            marker
        )
    }
}

extension SteadyStatePair {
    /// ``command(seq:round:)``'s command sealed as extension 12 seals it (the relay sees a
    /// `sealed` payload); the marker is the ciphertext, which the relay forwards unchanged.
    func sealedCommand(seq: UInt64, round: Int, key: SymmetricKey) throws -> (text: String, marker: String) {
        try sealed(command(seq: seq, round: round).text, seq: seq, key: key, epoch: nil)
    }

    /// ``event(seq:round:)``'s payload sealed under a content key of epoch 0.
    func sealedEvent(seq: UInt64, round: Int, key: SymmetricKey) throws -> (text: String, marker: String) {
        try sealed(event(seq: seq, round: round).text, seq: seq, key: key, epoch: 0)
    }

    /// The envelope `text` with its payload sealed for its shell.
    private func sealed(_ text: String, seq: UInt64, key: SymmetricKey, epoch: UInt64?) throws -> (text: String, marker: String) {
        let payload = try JSONValue.parse(text)["payload"] ?? [:]
        let shell = EnvelopeShell(sessionID: sessionID, seq: seq, timestamp: "2026-12-07T00:00:00.000Z")
        let ciphertext = try shell.seal(payload, key: key)
        var sealed: [String: JSONValue] = ["type": "sealed", "ciphertext": .string(ciphertext)]
        if let epoch { sealed["epoch"] = .int(epoch) }
        return (shell.envelope(payload: .object(sealed)), ciphertext)
    }
}

/// Runs the round trips.
package enum SteadyState {
    /// One measured run: the CPU the processes `pids` spent per forwarded message, the round trips'
    /// latencies, and the failures.
    struct Measurement {
        var cpuMicrosPerMessage: Double
        var latency: LatencyRecorder
        var failures: [String]
    }

    /// ``run(pairs:roundTrips:round:firstSeq:timeout:recorder:)`` with the CPU of `pids` (summed)
    /// read around it.
    static func measure(
        pairs: [SteadyStatePair], roundTrips: Int, round: Int, firstSeq: UInt64, timeout: Duration, pids: [Int32],
        sealingKey: SymmetricKey? = nil
    ) async -> Measurement {
        let recorder = LatencyRecorder()
        let accounting = RunAccounting(relayPIDs: pids)
        let failures = await run(
            pairs: pairs, roundTrips: roundTrips, round: round, firstSeq: firstSeq, timeout: timeout, recorder: recorder,
            sealingKey: sealingKey)
        let messages = Double(2 * pairs.count * roundTrips)
        let cpu = accounting.snapshot().relayCPUSeconds ?? 0
        return Measurement(cpuMicrosPerMessage: messages > 0 ? cpu * 1e6 / messages : 0, latency: recorder, failures: failures)
    }

    /// `roundTrips` echoes on every pair at once (closed loop: each pair waits for its echo before
    /// the next command). `round` keeps each run's markers apart; `firstSeq` must grow across runs
    /// on the same sockets (the relay refuses a replayed seq). Returns the failures.
    /// With `sealingKey`, both frames are extension 12's `sealed` envelopes of the same content.
    package static func run(
        pairs: [SteadyStatePair], roundTrips: Int, round: Int, firstSeq: UInt64, timeout: Duration, recorder: LatencyRecorder,
        sealingKey: SymmetricKey? = nil
    ) async -> [String] {
        let failures = await forEachConcurrently(count: pairs.count, width: pairs.count) { index in
            let pair = pairs[index]
            for offset in 0..<UInt64(roundTrips) {
                let seq = firstSeq + offset
                let started = ContinuousClock.now
                let command = try sealingKey.map { try pair.sealedCommand(seq: seq, round: round, key: $0) } ?? pair.command(seq: seq, round: round)
                try await pair.phone.sendText(command.text)
                try await awaitText(on: pair.desktop, timeout: timeout, what: "command \(seq) at the desktop") { $0.contains(command.marker) }
                let event = try sealingKey.map { try pair.sealedEvent(seq: seq, round: round, key: $0) } ?? pair.event(seq: seq, round: round)
                try await pair.desktop.sendText(event.text)
                try await awaitText(on: pair.phone, timeout: timeout, what: "event \(seq) at the phone") { $0.contains(event.marker) }
                recorder.record(ContinuousClock.now - started)
            }
        }
        return failures.map { "session \($0.0): \($0.1)" }
    }

    /// Reads text frames until `wanted` accepts one; the others (relay notices) are skipped.
    /// Throws ``RelayClientError/timedOut(_:)`` naming `what` when `timeout` passes first.
    static func awaitText(
        on socket: RelayWebSocket, timeout: Duration, what: String, until wanted: (String) throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw RelayClientError.timedOut("\(what) not delivered within \(timeout)") }
            let text: String
            do {
                text = try await socket.nextText(timeout: remaining)
            } catch RelayClientError.timedOut {
                throw RelayClientError.timedOut("\(what) not delivered within \(timeout)")
            }
            if try wanted(text) { return }
        }
    }
}

import Foundation
import NIOPosix
import RelayClient

// relay-load roundtrip: pair one desktop and one phone against RELAY_LOAD_BASE_URL, then time
// RELAY_LOAD_MESSAGES commands from the phone until the desktop reads each one (PROTOCOL §9.1's
// round trip). Prints the pairing time and the latency percentiles. Loopback only.
// RELAY_LOAD_PHONE_BASE_URL puts the phone on another node of a cluster (join and socket there),
// so the round trip crosses NATS.

@main
struct RelayLoad {
    static func main() async throws {
        let env = ProcessInfo.processInfo.environment
        let baseURL = (env["RELAY_LOAD_BASE_URL"] ?? "http://127.0.0.1:8787").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let messages = Int(env["RELAY_LOAD_MESSAGES"] ?? "") ?? 100
        let origin = env["RELAY_LOAD_ORIGIN"] ?? "http://localhost:4173"
        let phoneBaseURL = (env["RELAY_LOAD_PHONE_BASE_URL"] ?? baseURL).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let phoneSocketURL = phoneBaseURL.replacingOccurrences(of: "http", with: "ws", options: .anchored) + "/ws"

        let pairingStarted = ContinuousClock.now
        let paired = try await RelayPairing.pairConnected(
            desktop: RelayDesktop(baseURL: baseURL), phone: RelayPhone(baseURL: phoneBaseURL, origin: origin),
            phoneSocketURL: phoneSocketURL, deviceName: "Load Harness iPhone")
        let pairing = ContinuousClock.now - pairingStarted
        let desktop = try paired.desktop.socket
        var samples: [Duration] = []
        samples.reserveCapacity(messages)
        for seq in 1...messages {
            let started = ContinuousClock.now
            try await paired.phone.sendCommand(
                name: "thread.select", commandID: "cmd-0-\(seq)", fields: ["threadID": "thread-0"], seq: UInt64(seq),
                includeTimestamp: false)
            while true {
                let frame = try await desktop.nextJSON(timeout: .seconds(3))
                if frame["payload"]?["type"]?.stringValue == "command", frame["seq"]?.uint64Value == UInt64(seq) { break }
            }
            samples.append(ContinuousClock.now - started)
        }
        _ = try? await paired.desktop.stop()
        samples.sort()
        func percentile(_ p: Double) -> Duration { samples[Int((Double(samples.count - 1) * p).rounded())] }
        func micros(_ d: Duration) -> Int { Int(d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000) }
        print("pairing_ms=\(micros(pairing) / 1000) round_trips=\(samples.count) p50_us=\(micros(percentile(0.5))) p95_us=\(micros(percentile(0.95))) p99_us=\(micros(percentile(0.99))) max_us=\(micros(samples.last!))")
    }
}

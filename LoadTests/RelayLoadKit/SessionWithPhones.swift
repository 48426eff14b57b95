// One session with its desktop and many phones: what the fan-out and resume modes drive.

import Foundation
import RelayTestClient

/// One session: a desktop connected and `phones` paired and connected, added one at a time (each
/// approval is read from the desktop's single socket).
struct SessionWithPhones {
    let desktop: RelayDesktop
    var phones: [RelayPhone] = []
    /// Why pairing stopped early, if it did.
    var failure: String?

    static func pair(
        relay: RelayUnderTest, phones count: Int, origin: String, deviceName: String, phoneSocketURL: String? = nil
    ) async -> SessionWithPhones {
        var session = SessionWithPhones(desktop: RelayDesktop(baseURL: relay.baseURL))
        do {
            let start = try await session.desktop.startPairing(idleTimeoutSeconds: 1800)
            guard start.status == 200 else {
                throw RelayClientError.unexpectedStatus(operation: "POST /pair/start", status: start.status, body: start.bodyText)
            }
            try await session.desktop.connect()
            for index in 0..<count {
                let phone = RelayPhone(baseURL: relay.baseURL, origin: origin)
                try await RelayPairing.addPhone(to: session.desktop, phone: phone, phoneSocketURL: phoneSocketURL, deviceName: "\(deviceName) \(index)")
                session.phones.append(phone)
            }
        } catch {
            session.failure = "pairing phone \(session.phones.count): \(error)"
        }
        return session
    }

    /// Sends events 1…`count` on a fixed schedule of `rate` per second, each padded to about
    /// `payloadBytes`; `willSend` runs just before each one goes.
    func streamEvents(count: Int, rate: Int, payloadBytes: Int, willSend: (UInt64) -> Void = { _ in }) async throws {
        let padding = String(repeating: "x", count: payloadBytes)
        let interval = Duration.seconds(1 / Double(rate))
        let start = ContinuousClock.now
        for seq in UInt64(1)...UInt64(count) {
            try await Task.sleep(until: start + interval * Double(seq - 1), clock: .continuous)
            willSend(seq)
            try await desktop.sendEvent(seq: seq, payload: ["pad": .string(padding)])
        }
    }

    /// Stops the session and closes every socket.
    func close() async {
        _ = try? await desktop.stop()
        for phone in phones { await phone.disconnect() }
        await desktop.disconnect()
    }
}

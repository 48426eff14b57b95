import Foundation
import RelayLocalCluster
import RelayProtocol
import RelayTestClient
import RelayTestSupport
import Testing

/// Extension 12 on the relay: `noise` and `sealed` payloads judged by shape and size alone,
/// budgeted and scoped as DECISIONS says, refused or required by `E2E_MODE`, counted.
@Suite("End-to-end payloads on the relay", .serialized, .timeLimit(.minutes(2)))
struct EndToEndRelayTests {
    static let ciphertext = Base64URL.encode([UInt8](repeating: 0xA5, count: 40))
    static let handshakeMessage = Base64URL.encode([UInt8](repeating: 7, count: 96))

    static func sealed(_ sessionID: String, seq: JSONValue?, payload: JSONValue? = nil) -> String {
        var envelope: [String: JSONValue] = [
            "schemaVersion": 2, "sessionID": .string(sessionID), "timestamp": "2026-12-07T12:00:00Z",
            "payload": payload ?? ["type": "sealed", "ciphertext": .string(ciphertext)],
        ]
        if let seq { envelope["seq"] = seq }
        return JSONValue.object(envelope).serialized
    }

    static func noise(_ sessionID: String, deviceID: String, pattern: String = "IKpsk2", extra: [String: JSONValue] = [:]) -> String {
        var payload: [String: JSONValue] = [
            "type": "noise", "pattern": .string(pattern), "message": .string(handshakeMessage), "deviceID": .string(deviceID),
        ]
        payload.merge(extra) { $1 }
        return JSONValue.object([
            "schemaVersion": 2, "sessionID": .string(sessionID), "timestamp": "2026-12-07T12:00:00Z", "payload": .object(payload),
        ]).serialized
    }

    /// The next frame of `type` (or an envelope whose payload is of `payloadType`), skipping others.
    static func next(on socket: RelayWebSocket, _ match: (JSONValue) -> Bool) async throws -> JSONValue {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let frame = try await socket.nextJSON(timeout: max(deadline - ContinuousClock.now, .milliseconds(1)))
            if match(frame) { return frame }
        }
    }

    static func error(on phone: RelayPhone) async throws -> (String, String) {
        let frame = try await next(on: phone.socket) { $0.type == "relay.error" }
        return (frame["error"]?.stringValue ?? "", frame["message"]?.stringValue ?? "")
    }

    /// A frame-level desktop and phone paired on `relay`, both connected.
    static func paired(_ relay: TestRelay, decisionFields: [String: JSONValue] = [:]) async throws -> (RelayDesktop, RelayPhone) {
        let desktop = RelayDesktop(baseURL: relay.baseURL)
        let phone = RelayPhone(baseURL: relay.baseURL)
        _ = try await RelayPairing.pairConnected(desktop: desktop, phone: phone, decisionFields: decisionFields)
        return (desktop, phone)
    }

    static func counter(_ relay: TestRelay, _ sample: String) async throws -> Double {
        prometheusSampleValue(try await relay.prometheusText(), sample)
    }

    @Test func optionalModeCarriesHandshakesAndSealedCommandsUnreadAndRefusesMalformedOnes() async throws {
        // Frames large enough to carry a Noise message past its 65535-byte limit.
        try await withRelay({ $0["MAX_WS_MESSAGE_BYTES"] = "200000" }) { relay in
            let (desktop, phone) = try await Self.paired(relay)
            let sid = desktop.sessionID, deviceID = try #require(phone.deviceID)
            let sealedBefore = try await Self.counter(relay, "relay_e2e_sealed_frames_total")
            let handshakesBefore = try await Self.counter(relay, #"relay_e2e_handshake_messages_total{pattern="IKpsk2"}"#)
            let refusedBefore = try await Self.counter(relay, #"relay_e2e_refusals_total{reason="invalid_command"}"#)

            // A handshake (no seq) and a sealed command reach the desktop with their payloads
            // untouched, stamped like any phone frame.
            try await phone.socket.sendText(Self.noise(sid, deviceID: deviceID))
            let handshake = try await Self.next(on: desktop.socket) { $0["payload"]?.type == "noise" }
            #expect(handshake["relayDeviceID"]?.stringValue == deviceID)
            #expect(handshake["payload"]?["message"]?.stringValue == Self.handshakeMessage)
            try await phone.socket.sendText(Self.sealed(sid, seq: 1))
            let sealed = try await Self.next(on: desktop.socket) { $0["payload"]?.type == "sealed" }
            #expect(sealed["payload"]?["ciphertext"]?.stringValue == Self.ciphertext)
            #expect(sealed["seq"]?.uint64Value == 1 && sealed["relayConnectionID"] != nil)

            // A sealed frame's seq is its nonce: the replay guard applies.
            try await phone.socket.sendText(Self.sealed(sid, seq: 1))
            #expect(try await Self.error(on: phone) == ("replayed_command", "Command sequence was replayed or out of order."))

            // Shapes and sizes, each refused with what is wrong; the contract's envelope rules first.
            let malformed: [(String, String)] = [
                (Self.sealed(sid, seq: nil), "Command envelopes must include numeric seq."),
                (Self.sealed(sid, seq: 2, payload: ["type": "sealed", "ciphertext": "not base64url!"]),
                 "Sealed payload ciphertext must be base64url without padding, at least 16 bytes."),
                (Self.sealed(sid, seq: 2, payload: ["type": "sealed", "ciphertext": .string(Base64URL.encode([1, 2, 3]))]),
                 "Sealed payload ciphertext must be base64url without padding, at least 16 bytes."),
                (Self.sealed(sid, seq: 2, payload: ["type": "sealed", "ciphertext": .string(Self.ciphertext + "==")]),
                 "Sealed payload ciphertext must be base64url without padding, at least 16 bytes."),
                (Self.sealed(sid, seq: 2, payload: ["type": "sealed", "ciphertext": .string(Self.ciphertext), "epoch": -1]),
                 "Sealed payload epoch must be a non-negative integer."),
                (Self.sealed(sid, seq: 2, payload: ["type": "sealed", "ciphertext": .string(Self.ciphertext), "text": "leak"]),
                 "Unexpected field 'text' in sealed payload."),
                (Self.noise(sid, deviceID: deviceID, pattern: "XX"), #"Noise payload pattern must be "IKpsk2" or "KK"."#),
                (Self.noise(sid, deviceID: deviceID, extra: ["message": ""]),
                 "Noise payload message must be base64url without padding, 1 to 65535 bytes."),
                (Self.noise(sid, deviceID: deviceID, extra: ["message": .string(Base64URL.encode([UInt8](repeating: 1, count: 65536)))]),
                 "Noise payload message must be base64url without padding, 1 to 65535 bytes."),
                (Self.noise(sid, deviceID: "not compact!"), "Noise payload deviceID must be a compact identifier."),
                (Self.noise(sid, deviceID: deviceID, extra: ["payload": "x"]), "Unexpected field 'payload' in noise payload."),
            ]
            for (frame, message) in malformed {
                try await phone.socket.sendText(frame)
                #expect(try await Self.error(on: phone) == ("invalid_command", message), "\(frame.prefix(160))")
            }
            // Another session's id is the contract's invalid_session; an unknown envelope key its invalid_command.
            try await phone.socket.sendText(Self.sealed(sid, seq: 2).replacingOccurrences(of: "\"schemaVersion\":2", with: "\"schemaVersion\":2,\"extra\":1"))
            #expect(try await Self.error(on: phone) == ("invalid_command", "Unexpected field 'extra' in command envelope."))

            // Nothing malformed reached the desktop, and a valid sealed frame still does.
            try await phone.socket.sendText(Self.sealed(sid, seq: 2))
            let next = try await Self.next(on: desktop.socket) { $0["payload"] != nil }
            #expect(next["seq"]?.uint64Value == 2 && next["payload"]?.type == "sealed")

            // With the default frame limit, size is judged on the whole frame: one too large closes
            // the socket as the contract says (not tested here; WebSocketProtocolTests does).
            #expect(try await Self.counter(relay, "relay_e2e_sealed_frames_total") >= sealedBefore + 2)
            #expect(try await Self.counter(relay, #"relay_e2e_handshake_messages_total{pattern="IKpsk2"}"#) >= handshakesBefore + 1)
            #expect(try await Self.counter(relay, #"relay_e2e_refusals_total{reason="invalid_command"}"#) >= refusedBefore + 11)
        }
    }

    @Test func requiredModeRefusesPlaintextCommandsAndCarriesSealedOnes() async throws {
        try await withRelay({ $0["E2E_MODE"] = "required" }) { relay in
            let (desktop, phone) = try await Self.paired(relay)
            let before = try await Self.counter(relay, #"relay_e2e_refusals_total{reason="e2e_required"}"#)
            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"], seq: 1)
            #expect(try await Self.error(on: phone) == ("e2e_required", "This relay accepts only end-to-end encrypted commands."))
            // Refused before the replay guard: seq 1 is still free for a sealed command.
            try await phone.socket.sendText(Self.sealed(desktop.sessionID, seq: 1))
            let sealed = try await Self.next(on: desktop.socket) { $0["payload"] != nil }
            #expect(sealed["payload"]?.type == "sealed" && sealed["seq"]?.uint64Value == 1)
            // Snapshot requests carry no content and stay allowed.
            try await phone.requestSnapshot(reason: "required")
            _ = try await Self.next(on: desktop.socket) { $0.type == "relay.snapshot_request" }
            #expect(try await Self.counter(relay, #"relay_e2e_refusals_total{reason="e2e_required"}"#) >= before + 1)
        }
    }

    @Test func offModeIsTheContract() async throws {
        try await withRelay({ $0["E2E_MODE"] = "off" }) { relay in
            let (desktop, phone) = try await Self.paired(relay)
            try await phone.socket.sendText(Self.sealed(desktop.sessionID, seq: 1))
            #expect(try await Self.error(on: phone) == ("invalid_command", "Only command payloads are accepted from mobile clients."))
            try await phone.socket.sendText(Self.noise(desktop.sessionID, deviceID: try #require(phone.deviceID)))
            #expect(try await Self.error(on: phone) == ("invalid_command", "Only command payloads are accepted from mobile clients."))
            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"], seq: 1)
            let command = try await Self.next(on: desktop.socket) { $0["payload"] != nil }
            #expect(command["payload"]?.type == "command")
        }
    }

    @Test func aViewDeviceMayHandshakeButItsSealedFramesAreRefused() async throws {
        try await withRelay { relay in
            let (desktop, phone) = try await Self.paired(relay, decisionFields: ["scope": "view"])
            let before = try await Self.counter(relay, #"relay_e2e_refusals_total{reason="scope_denied"}"#)
            try await phone.socket.sendText(Self.noise(desktop.sessionID, deviceID: try #require(phone.deviceID), pattern: "KK"))
            _ = try await Self.next(on: desktop.socket) { $0["payload"]?.type == "noise" }
            try await phone.socket.sendText(Self.sealed(desktop.sessionID, seq: 1))
            #expect(try await Self.error(on: phone) == ("scope_denied", "This device can view the session but not control it."))
            #expect(try await Self.counter(relay, #"relay_e2e_refusals_total{reason="scope_denied"}"#) >= before + 1)

            // A control grant limited to some commands: the relay cannot read the name, the desktop
            // enforces it; the sealed frame is carried.
            let change = try await desktop.setScope(try #require(phone.deviceID), fields: ["scope": "control", "allowedCommands": ["thread.select"]])
            #expect(change.status == 200)
            _ = try await Self.next(on: phone.socket) { $0.type == "relay.scope" }
            try await phone.socket.sendText(Self.sealed(desktop.sessionID, seq: 1))
            let carried = try await Self.next(on: desktop.socket) { $0["payload"]?.type == "sealed" }
            #expect(carried["seq"]?.uint64Value == 1, "the denied frame consumed no seq")
        }
    }

    @Test func sealedFramesSpendTheCommandBudgetAndHandshakesTheSnapshotBudget() async throws {
        try await withRelay({
            $0["MAX_REMOTE_COMMANDS_PER_MINUTE"] = "2"
            $0["MAX_SNAPSHOT_REQUESTS_PER_MINUTE"] = "1"
        }) { relay in
            let (desktop, phone) = try await Self.paired(relay)
            try await phone.socket.sendText(Self.sealed(desktop.sessionID, seq: 1))
            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"], seq: 2)
            try await phone.socket.sendText(Self.sealed(desktop.sessionID, seq: 3))
            #expect(try await Self.error(on: phone) == ("command_rate_limited", "Too many remote commands from this device. Retry shortly."))
            let deviceID = try #require(phone.deviceID)
            try await phone.socket.sendText(Self.noise(desktop.sessionID, deviceID: deviceID))
            try await phone.socket.sendText(Self.noise(desktop.sessionID, deviceID: deviceID))
            #expect(try await Self.error(on: phone) == ("snapshot_rate_limited", "Too many snapshot requests from this device. Retry shortly."))
        }
    }

    @Test func aSealedFrameWithTheDesktopAwayIsDesktopOffline() async throws {
        try await withRelay { relay in
            let (desktop, phone) = try await Self.paired(relay)
            try await desktop.socket.close()
            _ = try await Self.next(on: phone.socket) { $0.type == "relay.desktop_status" }
            try await phone.socket.sendText(Self.sealed(desktop.sessionID, seq: 1))
            #expect(try await Self.error(on: phone) == ("desktop_offline", "Mac is offline. Reconnect desktop and try again."))
            try await phone.socket.sendText(Self.noise(desktop.sessionID, deviceID: try #require(phone.deviceID)))
            #expect(try await Self.error(on: phone) == ("desktop_offline", "Mac is offline. Reconnect desktop and try again."))
        }
    }
}

import RelayProtocol
import Testing

/// Extension 12's shapes as the relay judges them, and the strict base64url they rest on.
@Suite("End-to-end payload shapes")
struct EndToEndPayloadTests {
    static let ciphertext = Base64URL.encode([UInt8](repeating: 9, count: 16))

    @Test func base64URLDecodesOnlyCanonicalTextAndCountsWithoutDecoding() {
        for count in 0...9 {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 250) }
            let text = Base64URL.encode(bytes)
            #expect(Base64URL.decode(text) == bytes)
            #expect(Base64URL.decodedCount(text) == count)
        }
        for bad in ["A", "AR", "AQ==", "A+/B", "AQ\n", "é"] {
            #expect(Base64URL.decode(bad) == nil, "\(bad)")
            #expect(Base64URL.decodedCount(bad) == nil, "\(bad)")
        }
    }

    @Test func aSealedPayloadNeedsACiphertextOfATagAndAnIntegerEpoch() {
        #expect(EndToEndPayload.sealed(["type": "sealed", "ciphertext": .string(Self.ciphertext)], epochRequired: false) == .success(nil))
        #expect(EndToEndPayload.sealed(["type": "sealed", "ciphertext": .string(Self.ciphertext), "epoch": 3], epochRequired: true) == .success(3))
        let short = Base64URL.encode([UInt8](repeating: 9, count: 15))
        let cases: [([String: JSONValue], String)] = [
            (["type": "sealed"], "Sealed payload ciphertext must be base64url without padding, at least 16 bytes."),
            (["type": "sealed", "ciphertext": .string(short)], "Sealed payload ciphertext must be base64url without padding, at least 16 bytes."),
            (["type": "sealed", "ciphertext": 12], "Sealed payload ciphertext must be base64url without padding, at least 16 bytes."),
            (["type": "sealed", "ciphertext": .string(Self.ciphertext), "epoch": .number(JSONNumber(lexeme: "1.5")!)], "Sealed payload epoch must be a non-negative integer."),
            (["type": "sealed", "ciphertext": .string(Self.ciphertext), "epoch": "1"], "Sealed payload epoch must be a non-negative integer."),
            (["type": "sealed", "ciphertext": .string(Self.ciphertext), "z": 1, "b": 2], "Unexpected field 'b' in sealed payload."),
        ]
        for (members, message) in cases {
            #expect(EndToEndPayload.sealed(members, epochRequired: false) == .failure(MobileError(.invalidCommand, message)), "\(members)")
        }
        #expect(EndToEndPayload.sealed(["type": "sealed", "ciphertext": .string(Self.ciphertext)], epochRequired: true)
            == .failure(MobileError(.invalidCommand, "Sealed payload requires epoch.")))
    }

    @Test func aNoisePayloadNamesAPatternAMessageAndADevice() {
        let message = Base64URL.encode([UInt8](repeating: 1, count: 48))
        #expect(EndToEndPayload.noise(["type": "noise", "pattern": "KK", "message": .string(message), "deviceID": "d-1"]) == .success(.kk))
        #expect(EndToEndPayload.noise(["type": "noise", "pattern": "IKpsk2", "message": .string(message), "deviceID": "d-1"]) == .success(.ikpsk2))
        let cases: [([String: JSONValue], String)] = [
            (["type": "noise", "pattern": "ikpsk2", "message": .string(message), "deviceID": "d"], #"Noise payload pattern must be "IKpsk2" or "KK"."#),
            (["type": "noise", "pattern": "KK", "deviceID": "d"], "Noise payload message must be base64url without padding, 1 to 65535 bytes."),
            (["type": "noise", "pattern": "KK", "message": .string(message)], "Noise payload deviceID must be a compact identifier."),
            (["type": "noise", "pattern": "KK", "message": .string(message), "deviceID": "d", "epoch": 1], "Unexpected field 'epoch' in noise payload."),
        ]
        for (members, message) in cases {
            #expect(EndToEndPayload.noise(members) == .failure(MobileError(.invalidCommand, message)), "\(members)")
        }
    }

    @Test func theValidatorClassifiesByModeAndRequiresSeqOnlyOfSealedFrames() throws {
        let sealed = try JSONValue.parse(#"{"schemaVersion":2,"sessionID":"\#(testSessionID)","seq":4,"payload":{"type":"sealed","ciphertext":"\#(Self.ciphertext)"}}"#)
        let noise = try JSONValue.parse(#"{"schemaVersion":2,"sessionID":"\#(testSessionID)","payload":{"type":"noise","pattern":"KK","message":"AQID","deviceID":"d"}}"#)
        let command = envelope(["name": "thread.select", "commandID": "c1", "threadID": "t1"])
        func classify(_ value: JSONValue, _ mode: EndToEndMode) -> Result<MobileFrameKind, MobileError> {
            MobileFrameValidator.classify(.success(value), sessionID: testSessionID, limits: MobileValidationLimits(endToEnd: mode))
        }
        #expect(classify(sealed, .optional) == .success(.sealed(seq: 4)))
        #expect(classify(noise, .required) == .success(.handshake(.kk)))
        #expect(classify(command, .required) == .failure(EndToEndPayload.requiredError))
        #expect(classify(command, .optional) == .success(.command(seq: 1, name: "thread.select")))
        let contract = MobileError(.invalidCommand, "Only command payloads are accepted from mobile clients.")
        #expect(classify(sealed, .off) == .failure(contract) && classify(noise, .off) == .failure(contract))
        #expect(MobileFrameValidator.requiresDesktop(sealed, endToEnd: .optional) && !MobileFrameValidator.requiresDesktop(sealed, endToEnd: .off))
    }
}

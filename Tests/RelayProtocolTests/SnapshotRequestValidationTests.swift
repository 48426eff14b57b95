// relay.snapshot_request structure rules (PROTOCOL §4.7), in the reference's order.

import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(2))) struct SnapshotRequestValidationTests {
    @Test func minimalSnapshotRequestIsAccepted() {
        let result = MobileFrameValidator.classify(
            .success(snapshotRequest()), sessionID: testSessionID, limits: defaultLimits)
        #expect(result == .success(.snapshotRequest))
    }

    @Test func snapshotRequestNeedsNoSchemaVersionOrSeq() {
        #expect(rejection(snapshotRequest(["reason": "resume", "lastSeq": 17])) == nil)
    }

    @Test func unexpectedFieldIsReportedFirstInByteOrder() {
        #expect(
            rejection(snapshotRequest(["seq": 1, "Zeta": 1, "alpha": 2]))
                == invalidSnapshot("Unexpected field 'Zeta' in snapshot request."))
        #expect(
            rejection(snapshotRequest(["schemaVersion": 2]))
                == invalidSnapshot("Unexpected field 'schemaVersion' in snapshot request."))
    }

    @Test func missingOrNonStringSessionIDIsRejected() {
        #expect(
            rejection(text: #"{"type":"relay.snapshot_request"}"#)
                == invalidSnapshot("Snapshot request requires sessionID."))
        #expect(
            rejection(text: #"{"type":"relay.snapshot_request","sessionID":7}"#)
                == invalidSnapshot("Snapshot request requires sessionID."))
    }

    @Test func foreignSessionIDIsAnInvalidSession() {
        let frame = snapshotRequest(["sessionID": "other"])
        #expect(
            rejection(frame)
                == MobileError(.invalidSession, "Snapshot request sessionID does not match authenticated session."))
    }

    @Test func nullReasonCountsAsPresentAndMustBeAString() {
        #expect(rejection(snapshotRequest(["reason": .null])) == invalidSnapshot("Snapshot reason must be a string."))
        #expect(rejection(snapshotRequest(["reason": 5])) == invalidSnapshot("Snapshot reason must be a string."))
    }

    @Test func reasonIsLimitedTo128Bytes() {
        #expect(rejection(snapshotRequest(["reason": .string(String(repeating: "r", count: 128))])) == nil)
        #expect(
            rejection(snapshotRequest(["reason": .string(String(repeating: "r", count: 129))]))
                == invalidSnapshot("Snapshot reason is too long."))
        // Bytes, not characters: 43 × "€" is 129 bytes.
        #expect(
            rejection(snapshotRequest(["reason": .string(String(repeating: "€", count: 43))]))
                == invalidSnapshot("Snapshot reason is too long."))
    }

    @Test func negativeLastSeqIsRejected() {
        #expect(rejection(text: lastSeqFrame("-1")) == invalidSnapshot("lastSeq must be numeric when provided."))
    }

    @Test(arguments: [
        "null", "1.5", "2.0", "1e2", "-0", "18446744073709551616", "true", "\"\"", "\"-1\"", "\" 1\"", "\"1.0\"", "[1]",
        "\"123456789012345678901\"",
    ])
    func nonNumericLastSeqIsRejected(_ lastSeq: String) {
        #expect(rejection(text: lastSeqFrame(lastSeq)) == invalidSnapshot("lastSeq must be numeric when provided."))
    }

    @Test(arguments: ["0", "42", "18446744073709551615", "\"0\"", "\"00012\"", "\"99999999999999999999\""])
    func nonNegativeIntegerOrDigitStringLastSeqIsAccepted(_ lastSeq: String) {
        #expect(rejection(text: lastSeqFrame(lastSeq)) == nil)
    }

    @Test func numericStringLastSeqOfOneToTwentyDigitsIsAccepted() {
        var generator = SeededGenerator(seed: 0x1A57_5E01)
        for _ in 0..<500 {
            let count = Int.random(in: 1...20, using: &generator)
            let digits = String((0..<count).map { _ in "0123456789".randomElement(using: &generator)! })
            #expect(rejection(snapshotRequest(["lastSeq": .string(digits)])) == nil, "lastSeq \(digits)")
        }
    }

    @Test func lastSeqStringsStartingWithALetterOrUnderscoreAreRejected() {
        var generator = SeededGenerator(seed: 0x1A57_5E02)
        let starts = Array("abcxyzABCXYZ_")
        for _ in 0..<500 {
            let tail = String(
                (0..<Int.random(in: 0...19, using: &generator)).map { _ in
                    "0123456789a_".randomElement(using: &generator)!
                })
            let text = String(starts.randomElement(using: &generator)!) + tail
            #expect(
                rejection(snapshotRequest(["lastSeq": .string(text)]))
                    == invalidSnapshot("lastSeq must be numeric when provided."), "lastSeq \(text)")
        }
    }

    @Test func rulesApplyInTheReferenceOrder() {
        // Unexpected field beats the missing sessionID; sessionID beats reason; reason beats lastSeq.
        #expect(
            rejection(text: #"{"type":"relay.snapshot_request","x":1,"reason":1}"#)
                == invalidSnapshot("Unexpected field 'x' in snapshot request."))
        #expect(
            rejection(text: #"{"type":"relay.snapshot_request","reason":1}"#)
                == invalidSnapshot("Snapshot request requires sessionID."))
        #expect(
            rejection(snapshotRequest(["reason": 1, "lastSeq": -1]))
                == invalidSnapshot("Snapshot reason must be a string."))
    }

    @Test func onlyTheExactTypeStringSelectsSnapshotRules() {
        // Any other top-level `type` is an unexpected field of a command envelope.
        #expect(
            rejection(text: #"{"type":"relay.snapshot_request ","sessionID":"sess_ABC-123"}"#)
                == invalidCommand("Unexpected field 'type' in command envelope."))
        #expect(
            rejection(text: #"{"type":"relay.auth","token":"t"}"#)
                == invalidCommand("Unexpected field 'token' in command envelope."))
    }

    private func lastSeqFrame(_ lastSeq: String) -> String {
        #"{"type":"relay.snapshot_request","sessionID":"sess_ABC-123","lastSeq":"# + lastSeq + "}"
    }
}

// Command-envelope steps 1–12 (PROTOCOL §4.7), each message and the order between them.

import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(2))) struct CommandEnvelopeValidationTests {
    @Test func canonicalEnvelopeClassifiesAsCommandWithItsSeqAndName() {
        let result = MobileFrameValidator.classify(
            .success(envelope(threadSelect, seq: 9)), sessionID: testSessionID, limits: defaultLimits)
        #expect(result == .success(.command(seq: 9, name: "thread.select")))
        #expect(rejection(envelope(threadSelect)) == nil)
    }

    @Test func canonicalEnvelopeTextFromTheSpecIsAccepted() {
        let text = #"""
            {"schemaVersion":2,"sessionID":"sess_ABC-123","seq":1,"timestamp":"2026-03-05T12:34:56Z",
             "payload":{"type":"command","payload":{"name":"thread.select","commandID":"cmd-1","threadID":"t-1"}}}
            """#
        #expect(rejection(text: text) == nil)
    }

    @Test func invalidJSONIsAnInvalidPayload() {
        #expect(rejection(text: "{not json") == MobileError(.invalidPayload, "Payload must be valid JSON."))
    }

    @Test(arguments: ["[]", "1", "\"command\"", "null", "true"])
    func nonObjectIsAnInvalidPayload(_ text: String) {
        #expect(rejection(text: text) == MobileError(.invalidPayload, "Payload must be a JSON object."))
    }

    @Test func unexpectedEnvelopeFieldIsReportedFirstInByteOrder() {
        let frame = envelope(threadSelect, extra: ["zebra": 1, "Apple": 2, "type": "command"])
        #expect(rejection(frame) == invalidCommand("Unexpected field 'Apple' in command envelope."))
    }

    @Test func topLevelTypeIsAnUnexpectedEnvelopeField() {
        let frame = envelope(threadSelect, extra: ["type": "command"])
        #expect(rejection(frame) == invalidCommand("Unexpected field 'type' in command envelope."))
    }

    @Test func relayIdentityFieldsAreAllowedInTheEnvelope() {
        let frame = envelope(threadSelect, extra: ["relayConnectionID": "spoof", "relayDeviceID": 5])
        #expect(rejection(frame) == nil)
    }

    @Test func kelvinSignKeyIsNotMistakenForAnAllowedKey() {
        let command: [String: JSONValue] = threadSelect.merging(["runtimeRequest\u{212A}ind": "approval"]) { $1 }
        #expect(
            rejection(envelope(command))
                == invalidCommand("Unexpected field 'runtimeRequest\u{212A}ind' in command payload."))
    }

    @Test func missingSessionIDIsRejected() {
        #expect(
            rejection(envelope(threadSelect, extra: ["sessionID": nil]))
                == invalidCommand("Command envelope requires sessionID."))
        #expect(
            rejection(envelope(threadSelect, extra: ["sessionID": 1]))
                == invalidCommand("Command envelope requires sessionID."))
    }

    @Test func mismatchedSessionIDIsAnInvalidSession() {
        #expect(
            rejection(envelope(threadSelect, extra: ["sessionID": "other"]))
                == MobileError(.invalidSession, "Command envelope sessionID does not match authenticated session."))
    }

    @Test(arguments: [nil, "\"2\"", "2.0", "2e0", "null", "-0", "99999999999999999999"] as [String?])
    func nonIntegerSchemaVersionIsRequired(_ schemaVersion: String?) {
        let frame = envelope(threadSelect, extra: ["schemaVersion": schemaVersion.map { try! JSONValue.parse($0) }])
        #expect(rejection(frame) == invalidCommand("schemaVersion is required for command envelopes."))
    }

    @Test(arguments: ["1", "3", "-2", "0"])
    func otherIntegerSchemaVersionIsUnsupported(_ schemaVersion: String) throws {
        let frame = envelope(threadSelect, extra: ["schemaVersion": try JSONValue.parse(schemaVersion)])
        #expect(rejection(frame) == MobileError(.unsupportedSchema, "Only schemaVersion 2 is supported."))
    }

    @Test func missingPayloadTypeIsRejected() {
        let required = invalidCommand("Command envelope payload.type is required.")
        #expect(rejection(envelope(threadSelect, extra: ["payload": nil])) == required)
        #expect(rejection(envelope(threadSelect, extra: ["payload": "command"])) == required)
        #expect(rejection(envelope(threadSelect, extra: ["payload": ["payload": .object(threadSelect)]])) == required)
        #expect(
            rejection(envelope(threadSelect, extra: ["payload": ["type": 1, "payload": .object(threadSelect)]]))
                == required)
    }

    @Test func nonCommandPayloadTypeIsRejected() {
        let frame = envelope(threadSelect, extra: ["payload": ["type": "event", "payload": .object(threadSelect)]])
        #expect(rejection(frame) == invalidCommand("Only command payloads are accepted from mobile clients."))
    }

    @Test func unexpectedWrapperFieldIsRejected() {
        let frame = envelope(
            threadSelect, extra: ["payload": ["type": "command", "payload": .object(threadSelect), "name": "x"]])
        #expect(rejection(frame) == invalidCommand("Unexpected field 'name' in command wrapper."))
    }

    @Test func missingCommandObjectIsRejected() {
        #expect(
            rejection(envelope(threadSelect, extra: ["payload": ["type": "command"]]))
                == invalidCommand("Command payload object is required."))
        #expect(
            rejection(
                envelope(threadSelect, extra: ["payload": ["type": "command", "payload": [.object(threadSelect)]]]))
                == invalidCommand("Command payload object is required."))
    }

    @Test func unexpectedCommandFieldIsReportedFirstInByteOrder() {
        let command = threadSelect.merging(["zeta": 1, "approved": true, "Beta": 0]) { $1 }
        #expect(rejection(envelope(command)) == invalidCommand("Unexpected field 'Beta' in command payload."))
    }

    @Test func missingCommandNameIsRejected() {
        var command = threadSelect
        command["name"] = nil
        #expect(rejection(envelope(command)) == invalidCommand("Command name is required."))
        command["name"] = 3
        #expect(rejection(envelope(command)) == invalidCommand("Command name is required."))
    }

    @Test func missingCommandIDIsRejected() {
        var command = threadSelect
        command["commandID"] = nil
        #expect(rejection(envelope(command)) == invalidCommand("commandID is required."))
        command["commandID"] = .null
        #expect(rejection(envelope(command)) == invalidCommand("commandID is required."))
    }

    @Test(arguments: ["", "has space", "dot.ted", "slash/", "é", String(repeating: "a", count: 129)])
    func nonCompactCommandIDIsRejected(_ commandID: String) {
        let command = threadSelect.merging(["commandID": .string(commandID)]) { $1 }
        #expect(rejection(envelope(command)) == invalidCommand("commandID must be a compact identifier."))
    }

    @Test func compactIdentifierAllowsLettersDigitsUnderscoreColonAndDash() {
        let command = threadSelect.merging(["commandID": .string("aZ09_:-" + String(repeating: "x", count: 121))]) {
            $1
        }
        #expect(rejection(envelope(command)) == nil)
    }

    @Test(arguments: [nil, "-1", "1.0", "1e0", "\"1\"", "null", "18446744073709551616", "-0"] as [String?])
    func nonNumericSeqIsRejected(_ seq: String?) {
        let frame = envelope(threadSelect, extra: ["seq": seq.map { try! JSONValue.parse($0) }])
        #expect(rejection(frame) == invalidCommand("Command envelopes must include numeric seq."))
    }

    @Test func largestSeqIsAccepted() {
        let frame = envelope(threadSelect, seq: .number(JSONNumber(UInt64.max)))
        #expect(
            MobileFrameValidator.classify(.success(frame), sessionID: testSessionID, limits: defaultLimits)
                == .success(.command(seq: UInt64.max, name: "thread.select")))
    }

    @Test func zeroSeqPassesClassificationForTheReplayGuardToReject() {
        let frame = envelope(threadSelect, seq: 0)
        #expect(
            MobileFrameValidator.classify(.success(frame), sessionID: testSessionID, limits: defaultLimits)
                == .success(.command(seq: 0, name: "thread.select")))
    }

    @Test func timestampIsNotChecked() {
        #expect(rejection(envelope(threadSelect, extra: ["timestamp": [1, .null]])) == nil)
        #expect(rejection(envelope(threadSelect, extra: ["timestamp": nil])) == nil)
    }

    @Test func stepsRunInTheReferenceOrder() {
        // Each frame breaks two rules; the earlier step wins.
        #expect(
            rejection(envelope(threadSelect, extra: ["sessionID": nil, "bogus": 1]))
                == invalidCommand("Unexpected field 'bogus' in command envelope."))
        #expect(
            rejection(envelope(threadSelect, extra: ["sessionID": nil, "schemaVersion": 3]))
                == invalidCommand("Command envelope requires sessionID."))
        #expect(
            rejection(envelope(threadSelect, extra: ["schemaVersion": 3, "payload": nil]))
                == MobileError(.unsupportedSchema, "Only schemaVersion 2 is supported."))
        #expect(
            rejection(
                envelope(["bogus": 1], extra: ["payload": ["type": "command", "payload": ["bogus": 1], "extra": 1]]))
                == invalidCommand("Unexpected field 'extra' in command wrapper."))
        #expect(
            rejection(envelope(["bogus": 1], seq: -1)) == invalidCommand("Unexpected field 'bogus' in command payload.")
        )
        #expect(rejection(envelope(["commandID": "c"], seq: -1)) == invalidCommand("Command name is required."))
        #expect(rejection(envelope(["name": "x"], seq: -1)) == invalidCommand("commandID is required."))
        #expect(
            rejection(envelope(["name": "x", "commandID": "c"], seq: -1))
                == invalidCommand("Command envelopes must include numeric seq."))
    }

    @Test func unknownNameStillClassifiesAsCommandSoSeqAndBudgetsAreConsumed() {
        let command: [String: JSONValue] = ["name": "approval.respond", "commandID": "c1"]
        #expect(
            MobileFrameValidator.classify(
                .success(envelope(command, seq: 4)), sessionID: testSessionID, limits: defaultLimits)
                == .success(.command(seq: 4, name: "approval.respond")))
    }
}

@Suite(.timeLimit(.minutes(2))) struct MobileFrameGateTests {
    @Test func commandPayloadsAndSnapshotRequestsRequireTheDesktop() throws {
        #expect(MobileFrameValidator.requiresDesktop(envelope(threadSelect)))
        #expect(MobileFrameValidator.requiresDesktop(snapshotRequest()))
        #expect(MobileFrameValidator.requiresDesktop(try JSONValue.parse(#"{"payload":{"type":"command"}}"#)))
    }

    @Test func otherFramesDoNotRequireTheDesktop() throws {
        #expect(!MobileFrameValidator.requiresDesktop(try JSONValue.parse(#"{"type":"relay.auth","token":"x"}"#)))
        #expect(!MobileFrameValidator.requiresDesktop(try JSONValue.parse(#"{"payload":{"type":"event"}}"#)))
        #expect(!MobileFrameValidator.requiresDesktop(try JSONValue.parse(#"{"payload":"command"}"#)))
        #expect(!MobileFrameValidator.requiresDesktop(try JSONValue.parse(#"["command"]"#)))
    }

    @Test func onlyAStringSessionIDThatDiffersIsForeign() throws {
        #expect(MobileFrameValidator.hasForeignSessionID(["sessionID": "other"], sessionID: testSessionID))
        #expect(
            !MobileFrameValidator.hasForeignSessionID(["sessionID": .string(testSessionID)], sessionID: testSessionID))
        #expect(!MobileFrameValidator.hasForeignSessionID(["sessionID": 5], sessionID: testSessionID))
        #expect(!MobileFrameValidator.hasForeignSessionID(["other": "x"], sessionID: testSessionID))
        #expect(!MobileFrameValidator.hasForeignSessionID(["other"], sessionID: testSessionID))
    }

    @Test func canonicallyEquivalentSessionIDIsStillForeign() {
        // "K" vs U+212A KELVIN SIGN: equal as Swift strings, different on the wire.
        #expect(MobileFrameValidator.hasForeignSessionID(["sessionID": "ab\u{212A}"], sessionID: "abK"))
    }

    @Test func statefulStepRejectionsCarryTheContractMessages() {
        #expect(
            MobileFrameValidator.desktopOfflineError
                == MobileError(.desktopOffline, "Mac is offline. Reconnect desktop and try again."))
        #expect(
            MobileFrameValidator.replayedCommandError
                == MobileError(.replayedCommand, "Command sequence was replayed or out of order."))
        #expect(
            MobileFrameValidator.deviceCommandRateLimitedError
                == MobileError(.commandRateLimited, "Too many remote commands from this device. Retry shortly."))
        #expect(
            MobileFrameValidator.sessionCommandRateLimitedError
                == MobileError(
                    .commandRateLimited, "Remote command throughput for this session is temporarily saturated."))
        #expect(
            MobileFrameValidator.snapshotRateLimitedError
                == MobileError(.snapshotRateLimited, "Too many snapshot requests from this device. Retry shortly."))
    }
}

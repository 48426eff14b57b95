// Step 16: the command catalog and the runtime_request.respond rules (PROTOCOL §4.7).

import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(2))) struct CommandCatalogTests {
    // MARK: Names

    @Test(arguments: ["approval.respond", "terminal.exec", "thread.Select", "", "thread.select "])
    func unknownCommandNameIsNotAllowed(_ name: String) {
        let command = threadSelect.merging(["name": .string(name)]) { $1 }
        #expect(rejection(envelope(command)) == invalidCommand("Command name is not allowed."))
    }

    @Test func legacyApprovalResponseIsRejected() {
        let command: [String: JSONValue] = [
            "name": "approval.respond", "commandID": "cmd-2", "runtimeRequestID": "42",
            "runtimeRequestResponse": ["decision": "accept"],
        ]
        #expect(rejection(envelope(command)) == invalidCommand("Command name is not allowed."))
    }

    @Test func allowedButUnusedFieldsAreAccepted() {
        let command = threadSelect.merging(["text": 12, "projectID": .null, "runtimeRequestKind": 3]) { $1 }
        #expect(rejection(envelope(command)) == nil)
    }

    // MARK: thread.send_message

    @Test func sendMessageWithThreadAndTextIsAccepted() {
        #expect(rejection(envelope(sendMessage(text: "  hello\n"))) == nil)
    }

    @Test func sendMessageRequiresThreadID() {
        var command = sendMessage(text: "hi")
        command["threadID"] = nil
        #expect(rejection(envelope(command)) == invalidCommand("thread.send_message requires threadID."))
        command["threadID"] = 5
        #expect(rejection(envelope(command)) == invalidCommand("thread.send_message requires threadID."))
    }

    @Test func sendMessageThreadIDMustBeCompact() {
        let command = sendMessage(text: "hi").merging(["threadID": "bad id"]) { $1 }
        #expect(rejection(envelope(command)) == invalidCommand("threadID must be a compact identifier."))
    }

    @Test func sendMessageRequiresText() {
        var command = sendMessage(text: "hi")
        command["text"] = nil
        #expect(rejection(envelope(command)) == invalidCommand("thread.send_message requires text."))
        command["text"] = .null
        #expect(rejection(envelope(command)) == invalidCommand("thread.send_message requires text."))
    }

    @Test(arguments: ["", " ", "\n\t\r ", "\u{A0}\u{2003}\u{3000}\u{2028}\u{85}\u{B}\u{C}"])
    func blankMessageTextIsRejected(_ text: String) {
        #expect(rejection(envelope(sendMessage(text: text))) == invalidCommand("Message text cannot be empty."))
    }

    @Test func zeroWidthSpaceIsNotWhitespace() {
        // U+200B has no White_Space property, so Rust's trim keeps it.
        #expect(rejection(envelope(sendMessage(text: "\u{200B}"))) == nil)
    }

    @Test func messageTextIsLimitedInBytes() {
        #expect(rejection(envelope(sendMessage(text: String(repeating: "a", count: 16384)))) == nil)
        #expect(
            rejection(envelope(sendMessage(text: String(repeating: "a", count: 16385))))
                == invalidCommand("Message text exceeds 16384 bytes."))
        // 5462 × "€" = 16386 bytes but only 5462 characters.
        #expect(
            rejection(envelope(sendMessage(text: String(repeating: "€", count: 5462))))
                == invalidCommand("Message text exceeds 16384 bytes."))
    }

    @Test func messageTextLimitFollowsTheConfiguration() {
        let limits = MobileValidationLimits(maxCommandTextBytes: 10)
        #expect(rejection(envelope(sendMessage(text: "0123456789")), limits: limits) == nil)
        #expect(
            rejection(envelope(sendMessage(text: "0123456789X")), limits: limits)
                == invalidCommand("Message text exceeds 10 bytes."))
    }

    @Test func threadIDIsCheckedBeforeText() {
        let command = sendMessage(text: "").merging(["threadID": "x y"]) { $1 }
        #expect(rejection(envelope(command)) == invalidCommand("threadID must be a compact identifier."))
    }

    // MARK: thread.select and project.select

    @Test func threadSelectRequiresACompactThreadID() {
        var command = threadSelect
        command["threadID"] = nil
        #expect(rejection(envelope(command)) == invalidCommand("thread.select requires threadID."))
        command["threadID"] = "a/b"
        #expect(rejection(envelope(command)) == invalidCommand("threadID must be a compact identifier."))
    }

    @Test func projectSelectRequiresACompactProjectID() {
        var command: [String: JSONValue] = ["name": "project.select", "commandID": "cmd-3", "projectID": "proj:main-1"]
        #expect(rejection(envelope(command)) == nil)
        command["projectID"] = nil
        #expect(rejection(envelope(command)) == invalidCommand("project.select requires projectID."))
        command["projectID"] = .string(String(repeating: "p", count: 129))
        #expect(rejection(envelope(command)) == invalidCommand("projectID must be a compact identifier."))
    }

    // MARK: runtime_request.respond

    @Test func runtimeRequestResponseCommandIsAccepted() {
        let command = respond(["decision": "accept", "optionID": "accept"])
        #expect(rejection(envelope(command)) == nil)
    }

    @Test func everyResponseFieldTogetherIsAccepted() {
        let response: JSONValue = [
            "decision": "acceptForSession", "permissions": ["fs.read", "net"], "scope": "session",
            "text": "", "optionID": "opt-1", "approved": false,
        ]
        #expect(rejection(envelope(respond(response, kind: "permissionsApproval"))) == nil)
    }

    @Test(arguments: ["approval", "permissionsApproval", "userInput", "mcpElicitation", "dynamicToolCall"])
    func recognizedRuntimeRequestKindsAreAccepted(_ kind: String) {
        #expect(rejection(envelope(respond(["approved": true], kind: .string(kind)))) == nil)
    }

    @Test func runtimeRequestIDIsRequired() {
        var command = respond(["approved": true])
        command["runtimeRequestID"] = nil
        #expect(rejection(envelope(command)) == invalidCommand("runtime_request.respond requires runtimeRequestID."))
        #expect(
            rejection(envelope(respond(["approved": true], id: 42)))
                == invalidCommand("runtime_request.respond requires runtimeRequestID."))
    }

    @Test(arguments: ["4a", "-1", " 1", "１", String(repeating: "9", count: 33)])
    func nonNumericRuntimeRequestIDIsRejected(_ id: String) {
        #expect(
            rejection(envelope(respond(["approved": true], id: .string(id))))
                == invalidCommand("runtimeRequestID must be numeric."))
    }

    @Test func emptyOrThirtyTwoDigitRuntimeRequestIDPasses() {
        #expect(rejection(envelope(respond(["approved": true], id: ""))) == nil)
        #expect(rejection(envelope(respond(["approved": true], id: .string(String(repeating: "9", count: 32))))) == nil)
    }

    @Test func unknownRuntimeRequestKindIsRejectedButNonStringKindIsIgnored() {
        #expect(
            rejection(envelope(respond(["approved": true], kind: "exec")))
                == invalidCommand("runtimeRequestKind is not recognized."))
        #expect(rejection(envelope(respond(["approved": true], kind: 7))) == nil)
        #expect(rejection(envelope(respond(["approved": true], kind: .null))) == nil)
        #expect(rejection(envelope(respond(["approved": true], kind: nil))) == nil)
    }

    @Test func runtimeRequestResponseIsRequired() {
        var command = respond(["approved": true])
        command["runtimeRequestResponse"] = nil
        #expect(
            rejection(envelope(command)) == invalidCommand("runtime_request.respond requires runtimeRequestResponse."))
    }

    @Test(arguments: [JSONValue.null, "accept", [], true])
    func nonObjectRuntimeRequestResponseIsRejected(_ response: JSONValue) {
        #expect(rejection(envelope(respond(response))) == invalidCommand("runtimeRequestResponse must be an object."))
    }

    @Test func unexpectedResponseFieldIsReportedFirstInByteOrder() {
        #expect(
            rejection(envelope(respond(["decision": "accept", "reason": "x", "Note": "y"])))
                == invalidCommand("Unexpected field 'Note' in runtimeRequestResponse."))
    }

    @Test func runtimeRequestResponsesWithoutFieldsAreRejected() {
        #expect(
            rejection(envelope(respond([:])))
                == invalidCommand("runtimeRequestResponse must include at least one response field."))
    }

    @Test func unknownDecisionIsRejectedButNonStringDecisionIsIgnored() {
        #expect(
            rejection(envelope(respond(["decision": "approve"])))
                == invalidCommand("runtimeRequestResponse.decision is not recognized."))
        #expect(rejection(envelope(respond(["decision": 1]))) == nil)
        #expect(rejection(envelope(respond(["decision": .null]))) == nil)
        for decision in ["accept", "acceptForSession", "decline", "cancel"] {
            #expect(rejection(envelope(respond(["decision": .string(decision)]))) == nil)
        }
    }

    @Test func permissionsMustBeAnArrayOfValidStrings() {
        #expect(
            rejection(envelope(respond(["permissions": "fs"])))
                == invalidCommand("runtimeRequestResponse.permissions must be an array."))
        #expect(
            rejection(envelope(respond(["permissions": .null])))
                == invalidCommand("runtimeRequestResponse.permissions must be an array."))
        #expect(
            rejection(envelope(respond(["permissions": ["fs", 1]])))
                == invalidCommand("runtimeRequestResponse.permissions must contain strings."))
        #expect(
            rejection(envelope(respond(["permissions": ["fs", " "]])))
                == invalidCommand("runtimeRequestResponse.permissions contains an invalid value."))
        #expect(
            rejection(envelope(respond(["permissions": [.string(String(repeating: "p", count: 257))]])))
                == invalidCommand("runtimeRequestResponse.permissions contains an invalid value."))
        #expect(rejection(envelope(respond(["permissions": [.string(String(repeating: "p", count: 256))]]))) == nil)
        #expect(rejection(envelope(respond(["permissions": []]))) == nil)
    }

    @Test func scopeMustBeANonBlankShortString() {
        #expect(
            rejection(envelope(respond(["scope": 1])))
                == invalidCommand("runtimeRequestResponse.scope must be a string."))
        #expect(
            rejection(envelope(respond(["scope": "\t"])))
                == invalidCommand("runtimeRequestResponse.scope is not valid."))
        #expect(
            rejection(envelope(respond(["scope": .string(String(repeating: "s", count: 129))])))
                == invalidCommand("runtimeRequestResponse.scope is not valid."))
        #expect(rejection(envelope(respond(["scope": .string(String(repeating: "s", count: 128))]))) == nil)
    }

    @Test func responseTextMayBeEmptyButIsLimited() {
        #expect(rejection(envelope(respond(["text": ""]))) == nil)
        #expect(
            rejection(envelope(respond(["text": .null])))
                == invalidCommand("runtimeRequestResponse.text must be a string."))
        #expect(
            rejection(envelope(respond(["text": .string(String(repeating: "t", count: 16385))])))
                == invalidCommand("runtimeRequestResponse.text exceeds 16384 bytes."))
        let limits = MobileValidationLimits(maxCommandTextBytes: 3)
        #expect(
            rejection(envelope(respond(["text": "abcd"])), limits: limits)
                == invalidCommand("runtimeRequestResponse.text exceeds 3 bytes."))
    }

    @Test func optionIDMustBeACompactString() {
        #expect(
            rejection(envelope(respond(["optionID": 1])))
                == invalidCommand("runtimeRequestResponse.optionID must be a string."))
        #expect(
            rejection(envelope(respond(["optionID": ""])))
                == invalidCommand("runtimeRequestResponse.optionID must be a compact identifier."))
    }

    @Test func approvedMustBeABoolean() {
        #expect(
            rejection(envelope(respond(["approved": "yes"])))
                == invalidCommand("runtimeRequestResponse.approved must be a boolean."))
        #expect(
            rejection(envelope(respond(["approved": .null])))
                == invalidCommand("runtimeRequestResponse.approved must be a boolean."))
    }

    @Test func responseRulesApplyInTheContractOrder() {
        #expect(
            rejection(envelope(respond(["decision": "nope", "approved": "x"], id: "x")))
                == invalidCommand("runtimeRequestID must be numeric."))
        #expect(
            rejection(envelope(respond(["decision": "nope"], kind: "nope")))
                == invalidCommand("runtimeRequestKind is not recognized."))
        #expect(
            rejection(envelope(respond(["decision": "nope", "permissions": 1])))
                == invalidCommand("runtimeRequestResponse.decision is not recognized."))
        #expect(
            rejection(envelope(respond(["permissions": 1, "scope": 1, "text": 1, "optionID": 1, "approved": 1])))
                == invalidCommand("runtimeRequestResponse.permissions must be an array."))
        #expect(
            rejection(envelope(respond(["scope": 1, "text": 1, "optionID": 1, "approved": 1])))
                == invalidCommand("runtimeRequestResponse.scope must be a string."))
        #expect(
            rejection(envelope(respond(["text": 1, "optionID": 1, "approved": 1])))
                == invalidCommand("runtimeRequestResponse.text must be a string."))
        #expect(
            rejection(envelope(respond(["optionID": 1, "approved": 1])))
                == invalidCommand("runtimeRequestResponse.optionID must be a string."))
    }

    private func sendMessage(text: String) -> [String: JSONValue] {
        ["name": "thread.send_message", "commandID": "cmd-9", "threadID": "thr_1", "text": .string(text)]
    }
}

// The stateless checks on a phone's frame (PROTOCOL §4.7).

/// The stateless validation of frames from an authenticated phone (PROTOCOL §4.7).
///
/// Keys and the strings the contract names are compared by their UTF-8 bytes, not with Swift's
/// `==` (which treats canonically equivalent strings, e.g. `K` and the Kelvin sign, as equal).
public enum MobileFrameValidator {
    /// Steps 1–12 of command-envelope validation, or the structure rules of a
    /// `relay.snapshot_request` (not its budget).
    ///
    /// - Parameters:
    ///   - parsed: `JSONValue.parse` of the frame; a parse error fails with `invalid_payload`.
    ///   - sessionID: the authenticated session.
    ///   - limits: the configured limits.
    public static func classify(
        _ parsed: Result<JSONValue, JSONParseError>,
        sessionID: String,
        limits: MobileValidationLimits
    ) -> Result<MobileFrameKind, MobileError> {
        guard case .success(let value) = parsed else {
            return .failure(MobileError(.invalidPayload, "Payload must be valid JSON."))
        }
        guard case .object(let members) = value else {
            return .failure(MobileError(.invalidPayload, "Payload must be a JSON object."))
        }
        if case .string(let type)? = members["type"], isSnapshotRequestType(type) {
            if let error = snapshotRequestError(members, sessionID: sessionID) { return .failure(error) }
            return .success(.snapshotRequest)
        }
        if case .string(let type)? = members["type"], isExactly(type, "relay.resume") {
            return resumeRequest(members, sessionID: sessionID)
        }
        return commandEnvelope(members, sessionID: sessionID, endToEnd: limits.endToEnd)
    }

    /// Extension 11: `{"type":"relay.resume","sessionID":…,"lastSeq":N}`, nothing else; `lastSeq`
    /// as a snapshot request's (a non-negative integer or 1–20 digits), but required.
    private static func resumeRequest(_ members: [String: JSONValue], sessionID: String) -> Result<MobileFrameKind, MobileError> {
        if let key = members.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).first(where: { !["type", "sessionID", "lastSeq"].contains($0) }) {
            return .failure(MobileError(.invalidResumeRequest, "Unexpected field '\(key)' in resume request."))
        }
        guard case .string(let claimed)? = members["sessionID"] else {
            return .failure(MobileError(.invalidResumeRequest, "Resume request requires sessionID."))
        }
        guard utf8Equal(claimed, sessionID) else {
            return .failure(MobileError(.invalidSession, "Resume request sessionID does not match authenticated session."))
        }
        guard let value = members["lastSeq"], isValidLastSeq(value) else {
            return .failure(MobileError(.invalidResumeRequest, "lastSeq must be a non-negative integer."))
        }
        let lastSeq: UInt64?
        switch value {
        case .number(let number): lastSeq = number.uint64
        case .string(let text): lastSeq = UInt64(text)
        default: lastSeq = nil
        }
        guard let lastSeq else { return .failure(MobileError(.invalidResumeRequest, "lastSeq must be a non-negative integer.")) }
        return .success(.resume(lastSeq: lastSeq))
    }

    /// Step 16: the name-specific rules of an envelope that ``classify(_:sessionID:limits:)``
    /// accepted as a command. Nil when the command is valid.
    public static func validateCommandName(_ envelope: JSONValue, limits: MobileValidationLimits) -> MobileError? {
        guard case .object(let members)? = envelope["payload"]?["payload"] else {
            return invalidCommand("Command name is required.")
        }
        let command = CommandMembers(members)
        guard case .string(let name)? = command.name else { return invalidCommand("Command name is required.") }

        switch CommandName(exactly: name) {
        case .sendMessage:
            if let error = compactField(
                command.threadID,
                missing: "thread.send_message requires threadID.",
                notCompact: "threadID must be a compact identifier."
            ) {
                return error
            }
            guard case .string(let text)? = command.text else {
                return invalidCommand("thread.send_message requires text.")
            }
            if isBlank(text) { return invalidCommand("Message text cannot be empty.") }
            if text.utf8.count > limits.maxCommandTextBytes {
                return invalidCommand("Message text exceeds \(limits.maxCommandTextBytes) bytes.")
            }
            return nil
        case .selectThread:
            return compactField(
                command.threadID,
                missing: "thread.select requires threadID.",
                notCompact: "threadID must be a compact identifier."
            )
        case .selectProject:
            return compactField(
                command.projectID,
                missing: "project.select requires projectID.",
                notCompact: "projectID must be a compact identifier."
            )
        case .respondToRuntimeRequest:
            return runtimeRequestRespondError(command, limits: limits)
        case nil:
            return invalidCommand("Command name is not allowed.")
        }
    }

    /// True when the frame needs the desktop online (step 5 gate): `payload.type` is `command` (or,
    /// unless `endToEnd` is off, `sealed` or `noise`) or the top-level `type` is
    /// `relay.snapshot_request`.
    public static func requiresDesktop(_ value: JSONValue, endToEnd: EndToEndMode = .optional) -> Bool {
        if case .string(let type)? = value["payload"]?["type"] {
            if isExactly(type, "command") { return true }
            if endToEnd != .off, isEndToEndType(type) { return true }
        }
        if case .string(let type)? = value["type"], isSnapshotRequestType(type) { return true }
        return false
    }

    /// Step 4: the frame is an object whose `sessionID` is a string other than `sessionID`; the
    /// caller drops such frames silently.
    public static func hasForeignSessionID(_ value: JSONValue, sessionID: String) -> Bool {
        guard case .string(let claimed)? = value["sessionID"] else { return false }
        return !utf8Equal(claimed, sessionID)
    }

    // MARK: Rejections of the stateful steps, applied by the caller

    /// Step 5: `desktop_offline`.
    public static let desktopOfflineError = MobileError(
        .desktopOffline, "Mac is offline. Reconnect desktop and try again.")
    /// Step 13: `replayed_command`.
    public static let replayedCommandError = MobileError(
        .replayedCommand, "Command sequence was replayed or out of order.")
    /// Step 14: the per-device command budget.
    public static let deviceCommandRateLimitedError = MobileError(
        .commandRateLimited, "Too many remote commands from this device. Retry shortly.")
    /// Step 15: the per-session command budget.
    public static let sessionCommandRateLimitedError = MobileError(
        .commandRateLimited, "Remote command throughput for this session is temporarily saturated.")
    /// The per-device snapshot budget.
    public static let snapshotRateLimitedError = MobileError(
        .snapshotRateLimited, "Too many snapshot requests from this device. Retry shortly.")
}

// MARK: - Rules

extension MobileFrameValidator {
    private static func snapshotRequestError(_ members: [String: JSONValue], sessionID: String) -> MobileError? {
        let request = SnapshotRequestMembers(members)
        if let key = request.unexpectedKey {
            return MobileError(.invalidSnapshotRequest, "Unexpected field '\(key)' in snapshot request.")
        }
        guard case .string(let claimed)? = request.sessionID else {
            return MobileError(.invalidSnapshotRequest, "Snapshot request requires sessionID.")
        }
        guard utf8Equal(claimed, sessionID) else {
            return MobileError(.invalidSession, "Snapshot request sessionID does not match authenticated session.")
        }
        if let reason = request.reason {
            guard case .string(let text) = reason else {
                return MobileError(.invalidSnapshotRequest, "Snapshot reason must be a string.")
            }
            guard text.utf8.count <= 128 else {
                return MobileError(.invalidSnapshotRequest, "Snapshot reason is too long.")
            }
        }
        if let lastSeq = request.lastSeq, !isValidLastSeq(lastSeq) {
            return MobileError(.invalidSnapshotRequest, "lastSeq must be numeric when provided.")
        }
        return nil
    }

    /// A non-negative integer that fits `UInt64`, or a string of 1–20 ASCII digits.
    private static func isValidLastSeq(_ value: JSONValue) -> Bool {
        switch value {
        case .number(let number):
            return number.isInteger && number.uint64 != nil
        case .string(let text):
            let count = text.utf8.count
            return count >= 1 && count <= 20 && isASCIIDigits(text)
        default:
            return false
        }
    }

    private static func commandEnvelope(
        _ members: [String: JSONValue],
        sessionID: String,
        endToEnd: EndToEndMode
    ) -> Result<MobileFrameKind, MobileError> {
        // 3. Envelope allowlist.
        let envelope = EnvelopeMembers(members)
        if let key = envelope.unexpectedKey {
            return .failure(invalidCommand("Unexpected field '\(key)' in command envelope."))
        }
        // 4. sessionID.
        guard case .string(let claimed)? = envelope.sessionID else {
            return .failure(invalidCommand("Command envelope requires sessionID."))
        }
        guard utf8Equal(claimed, sessionID) else {
            return .failure(
                MobileError(.invalidSession, "Command envelope sessionID does not match authenticated session."))
        }
        // 5. schemaVersion: an integer as the reference reads one, then exactly 2.
        guard case .number(let schemaVersion)? = envelope.schemaVersion, schemaVersion.isWireInteger else {
            return .failure(invalidCommand("schemaVersion is required for command envelopes."))
        }
        guard schemaVersion.uint64 == 2 else {
            return .failure(MobileError(.unsupportedSchema, "Only schemaVersion 2 is supported."))
        }
        // 6. payload.type.
        guard case .object(let wrapperMembers)? = envelope.payload,
            case .string(let payloadType)? = wrapperMembers["type"]
        else {
            return .failure(invalidCommand("Command envelope payload.type is required."))
        }
        if endToEnd != .off, isEndToEndType(payloadType) {
            return endToEndEnvelope(wrapperMembers, type: payloadType, seq: envelope.seq)
        }
        guard isExactly(payloadType, "command") else {
            return .failure(invalidCommand("Only command payloads are accepted from mobile clients."))
        }
        if endToEnd == .required { return .failure(EndToEndPayload.requiredError) }
        // 7. Wrapper allowlist.
        let wrapper = WrapperMembers(wrapperMembers)
        if let key = wrapper.unexpectedKey {
            return .failure(invalidCommand("Unexpected field '\(key)' in command wrapper."))
        }
        // 8. The command object.
        guard case .object(let commandMembers)? = wrapper.payload else {
            return .failure(invalidCommand("Command payload object is required."))
        }
        // 9. Command allowlist.
        let command = CommandMembers(commandMembers)
        if let key = command.unexpectedKey {
            return .failure(invalidCommand("Unexpected field '\(key)' in command payload."))
        }
        // 10. name.
        guard case .string(let name)? = command.name else {
            return .failure(invalidCommand("Command name is required."))
        }
        // 11. commandID.
        if let error = compactField(
            command.commandID,
            missing: "commandID is required.",
            notCompact: "commandID must be a compact identifier."
        ) {
            return .failure(error)
        }
        // 12. seq.
        guard case .number(let seqNumber)? = envelope.seq, seqNumber.isInteger, let seq = seqNumber.uint64 else {
            return .failure(invalidCommand("Command envelopes must include numeric seq."))
        }
        return .success(.command(seq: seq, name: name))
    }

    /// Extension 12: a `sealed` or `noise` payload, checked by shape and size; its content is
    /// never looked at. A sealed envelope needs an integer `seq` (its nonce); a noise envelope's
    /// `seq`, when present, must be one too.
    private static func endToEndEnvelope(
        _ payload: [String: JSONValue], type: String, seq: JSONValue?
    ) -> Result<MobileFrameKind, MobileError> {
        let seqNumber: UInt64?
        switch seq {
        case .number(let number)? where number.isInteger && number.uint64 != nil: seqNumber = number.uint64
        case nil: seqNumber = nil
        default: return .failure(invalidCommand("Command envelopes must include numeric seq."))
        }
        if isExactly(type, "noise") {
            return EndToEndPayload.noise(payload).map { .handshake($0) }
        }
        guard let seqNumber else { return .failure(invalidCommand("Command envelopes must include numeric seq.")) }
        return EndToEndPayload.sealed(payload, epochRequired: false).map { _ in .sealed(seq: seqNumber) }
    }

    private static func runtimeRequestRespondError(
        _ command: CommandMembers,
        limits: MobileValidationLimits
    ) -> MobileError? {
        guard case .string(let requestID)? = command.runtimeRequestID else {
            return invalidCommand("runtime_request.respond requires runtimeRequestID.")
        }
        // The empty string passes, as in the reference.
        guard requestID.utf8.count <= 32, isASCIIDigits(requestID) else {
            return invalidCommand("runtimeRequestID must be numeric.")
        }
        if case .string(let kind)? = command.runtimeRequestKind, !isRuntimeRequestKind(kind) {
            return invalidCommand("runtimeRequestKind is not recognized.")
        }
        guard let responseValue = command.runtimeRequestResponse else {
            return invalidCommand("runtime_request.respond requires runtimeRequestResponse.")
        }
        guard case .object(let responseMembers) = responseValue else {
            return invalidCommand("runtimeRequestResponse must be an object.")
        }
        let response = ResponseMembers(responseMembers)
        if let key = response.unexpectedKey {
            return invalidCommand("Unexpected field '\(key)' in runtimeRequestResponse.")
        }
        if responseMembers.isEmpty {
            return invalidCommand("runtimeRequestResponse must include at least one response field.")
        }
        if case .string(let decision)? = response.decision, !isDecision(decision) {
            return invalidCommand("runtimeRequestResponse.decision is not recognized.")
        }
        if let permissionsValue = response.permissions {
            guard case .array(let permissions) = permissionsValue else {
                return invalidCommand("runtimeRequestResponse.permissions must be an array.")
            }
            for permissionValue in permissions {
                guard case .string(let permission) = permissionValue else {
                    return invalidCommand("runtimeRequestResponse.permissions must contain strings.")
                }
                if isBlank(permission) || permission.utf8.count > 256 {
                    return invalidCommand("runtimeRequestResponse.permissions contains an invalid value.")
                }
            }
        }
        if let scopeValue = response.scope {
            guard case .string(let scope) = scopeValue else {
                return invalidCommand("runtimeRequestResponse.scope must be a string.")
            }
            if isBlank(scope) || scope.utf8.count > 128 {
                return invalidCommand("runtimeRequestResponse.scope is not valid.")
            }
        }
        if let textValue = response.text {
            guard case .string(let text) = textValue else {
                return invalidCommand("runtimeRequestResponse.text must be a string.")
            }
            if text.utf8.count > limits.maxCommandTextBytes {
                return invalidCommand("runtimeRequestResponse.text exceeds \(limits.maxCommandTextBytes) bytes.")
            }
        }
        if let optionValue = response.optionID {
            guard case .string(let optionID) = optionValue else {
                return invalidCommand("runtimeRequestResponse.optionID must be a string.")
            }
            if !isCompactIdentifier(optionID) {
                return invalidCommand("runtimeRequestResponse.optionID must be a compact identifier.")
            }
        }
        if let approvedValue = response.approved, approvedValue.boolValue == nil {
            return invalidCommand("runtimeRequestResponse.approved must be a boolean.")
        }
        return nil
    }

    /// A required compact-identifier string field: `missing` unless it is a string, `notCompact`
    /// unless it is compact.
    private static func compactField(_ value: JSONValue?, missing: String, notCompact: String) -> MobileError? {
        guard case .string(let text)? = value else { return invalidCommand(missing) }
        return isCompactIdentifier(text) ? nil : invalidCommand(notCompact)
    }

    private static func invalidCommand(_ message: String) -> MobileError {
        MobileError(.invalidCommand, message)
    }
}

// MARK: - Allowlists, read in one pass

/// The members of one object level that an allowlist names, read in one pass over the object.
///
/// Keys are matched with `switch` on ASCII literals, and only ASCII keys are offered to `take`:
/// between ASCII strings Swift's `==` is byte equality, so a key like `runtimeRequest\u{212A}ind`
/// (Kelvin sign) is unexpected, as it is for the reference.
private protocol AllowedMembers {
    init()
    /// Stores `value` if `key` is allowed at this level; false for an unexpected key.
    mutating func take(_ key: String, _ value: JSONValue) -> Bool
    /// The first unexpected key in byte-wise order, if any.
    var unexpectedKey: String? { get set }
}

extension AllowedMembers {
    init(_ members: [String: JSONValue]) {
        self.init()
        for (key, value) in members {
            if isASCII(key), take(key, value) { continue }
            if let current = unexpectedKey, !utf8Precedes(key, current) { continue }
            unexpectedKey = key
        }
    }
}

private struct SnapshotRequestMembers: AllowedMembers {
    var sessionID: JSONValue?
    var reason: JSONValue?
    var lastSeq: JSONValue?
    var unexpectedKey: String?

    mutating func take(_ key: String, _ value: JSONValue) -> Bool {
        switch key {
        case "type": break
        case "sessionID": sessionID = value
        case "reason": reason = value
        case "lastSeq": lastSeq = value
        default: return false
        }
        return true
    }
}

private struct EnvelopeMembers: AllowedMembers {
    var schemaVersion: JSONValue?
    var sessionID: JSONValue?
    var seq: JSONValue?
    var payload: JSONValue?
    var unexpectedKey: String?

    mutating func take(_ key: String, _ value: JSONValue) -> Bool {
        switch key {
        case "schemaVersion": schemaVersion = value
        case "sessionID": sessionID = value
        case "seq": seq = value
        case "payload": payload = value
        case "timestamp", "relayConnectionID", "relayDeviceID": break
        default: return false
        }
        return true
    }
}

private struct WrapperMembers: AllowedMembers {
    var payload: JSONValue?
    var unexpectedKey: String?

    mutating func take(_ key: String, _ value: JSONValue) -> Bool {
        switch key {
        case "type": break
        case "payload": payload = value
        default: return false
        }
        return true
    }
}

private struct CommandMembers: AllowedMembers {
    var name: JSONValue?
    var commandID: JSONValue?
    var threadID: JSONValue?
    var projectID: JSONValue?
    var text: JSONValue?
    var runtimeRequestID: JSONValue?
    var runtimeRequestKind: JSONValue?
    var runtimeRequestResponse: JSONValue?
    var unexpectedKey: String?

    mutating func take(_ key: String, _ value: JSONValue) -> Bool {
        switch key {
        case "name": name = value
        case "commandID": commandID = value
        case "threadID": threadID = value
        case "projectID": projectID = value
        case "text": text = value
        case "runtimeRequestID": runtimeRequestID = value
        case "runtimeRequestKind": runtimeRequestKind = value
        case "runtimeRequestResponse": runtimeRequestResponse = value
        default: return false
        }
        return true
    }
}

private struct ResponseMembers: AllowedMembers {
    var decision: JSONValue?
    var permissions: JSONValue?
    var scope: JSONValue?
    var text: JSONValue?
    var optionID: JSONValue?
    var approved: JSONValue?
    var unexpectedKey: String?

    mutating func take(_ key: String, _ value: JSONValue) -> Bool {
        switch key {
        case "decision": decision = value
        case "permissions": permissions = value
        case "scope": scope = value
        case "text": text = value
        case "optionID": optionID = value
        case "approved": approved = value
        default: return false
        }
        return true
    }
}

/// The command catalog.
private enum CommandName {
    case sendMessage
    case selectThread
    case selectProject
    case respondToRuntimeRequest

    init?(exactly name: String) {
        guard isASCII(name) else { return nil }
        switch name {
        case "thread.send_message": self = .sendMessage
        case "thread.select": self = .selectThread
        case "project.select": self = .selectProject
        case "runtime_request.respond": self = .respondToRuntimeRequest
        default: return nil
        }
    }
}

// MARK: - Helpers

private func isSnapshotRequestType(_ type: String) -> Bool { isExactly(type, "relay.snapshot_request") }

private func isEndToEndType(_ type: String) -> Bool { isExactly(type, "sealed") || isExactly(type, "noise") }

private func isRuntimeRequestKind(_ kind: String) -> Bool {
    guard isASCII(kind) else { return false }
    switch kind {
    case "approval", "permissionsApproval", "userInput", "mcpElicitation", "dynamicToolCall": return true
    default: return false
    }
}

private func isDecision(_ decision: String) -> Bool {
    guard isASCII(decision) else { return false }
    switch decision {
    case "accept", "acceptForSession", "decline", "cancel": return true
    default: return false
    }
}

/// Byte equality with an ASCII literal.
@inline(__always)
private func isExactly(_ text: String, _ literal: String) -> Bool {
    text.utf8.count == literal.utf8.count && text == literal
}

/// Every byte below 0x80.
private func isASCII(_ text: String) -> Bool {
    withUTF8Bytes(text) { bytes in
        for byte in bytes where byte >= 0x80 { return false }
        return true
    }
}

/// 1…128 characters, all in `[A-Za-z0-9_:-]` (also extension 12's `deviceID`).
func isCompactIdentifier(_ text: String) -> Bool {
    withUTF8Bytes(text) { bytes in
        guard !bytes.isEmpty, bytes.count <= 128 else { return false }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }
}

/// Every byte an ASCII digit (true for the empty string).
private func isASCIIDigits(_ text: String) -> Bool {
    withUTF8Bytes(text) { bytes in
        for byte in bytes where byte &- UInt8(ascii: "0") >= 10 { return false }
        return true
    }
}

/// Empty after trimming Unicode whitespace (the `White_Space` property, as Rust's `trim`).
private func isBlank(_ text: String) -> Bool {
    text.unicodeScalars.allSatisfy { $0.properties.isWhitespace }
}

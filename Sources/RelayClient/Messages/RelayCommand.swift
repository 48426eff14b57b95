// The commands a phone may send (PROTOCOL §4.7's catalog), as values instead of JSON.

import RelayProtocol

/// A command from a phone to its desktop: one case per name the relay accepts.
///
/// ``RelayPhoneClient/send(_:commandID:)`` wraps it in the command envelope; a desktop receives it
/// back as ``RelayIncomingCommand/command``. The relay checks each field as the protocol says
/// (compact identifiers, text within `MAX_REMOTE_COMMAND_TEXT_BYTES`); a refusal arrives as a
/// ``RelayPhoneEvent/relayError(_:)``.
public enum RelayCommand: Sendable, Equatable {
    /// `thread.send_message`: a message typed into a thread.
    case sendMessage(threadID: String, text: String)
    /// `thread.select`: the thread the phone shows.
    case selectThread(threadID: String)
    /// `project.select`: the project the phone shows.
    case selectProject(projectID: String)
    /// `runtime_request.respond`: the answer to a request the agent made (an approval, a question).
    case respondToRuntimeRequest(id: String, kind: RelayRuntimeRequestKind?, response: RelayRuntimeResponse)

    /// The command's `name` on the wire.
    public var name: String {
        switch self {
        case .sendMessage: "thread.send_message"
        case .selectThread: "thread.select"
        case .selectProject: "project.select"
        case .respondToRuntimeRequest: "runtime_request.respond"
        }
    }

    /// The command's members other than `name` and `commandID`.
    public var fields: [String: JSONValue] {
        switch self {
        case .sendMessage(let threadID, let text):
            ["threadID": .string(threadID), "text": .string(text)]
        case .selectThread(let threadID):
            ["threadID": .string(threadID)]
        case .selectProject(let projectID):
            ["projectID": .string(projectID)]
        case .respondToRuntimeRequest(let id, let kind, let response):
            ["runtimeRequestID": .string(id), "runtimeRequestResponse": response.json]
                .merging(kind.map { ["runtimeRequestKind": .string($0.rawValue)] } ?? [:]) { first, _ in first }
        }
    }

    /// The command envelope a phone sends:
    /// `{"schemaVersion":2,"sessionID":…,"seq":n,"timestamp":…,"payload":{"type":"command","payload":{"name":…,"commandID":…,…fields}}}`
    /// (without `timestamp` when `includeTimestamp` is false; the relay does not require it).
    package static func envelope(
        sessionID: String, seq: UInt64, name: String, commandID: String, fields: [String: JSONValue], includeTimestamp: Bool = true
    ) -> String {
        var command = fields
        command["name"] = .string(name)
        command["commandID"] = .string(commandID)
        var envelope: [String: JSONValue] = [
            "schemaVersion": 2,
            "sessionID": .string(sessionID),
            "seq": .int(seq),
            "payload": ["type": "command", "payload": .object(command)],
        ]
        if includeTimestamp { envelope["timestamp"] = .string(RelayTimestamp.now()) }
        return JSONValue.object(envelope).serialized
    }

    /// Reads a command object (`name` plus fields); `nil` for a name or shape this version does
    /// not know (the desktop still gets the raw fields in ``RelayIncomingCommand``).
    public init?(name: String, fields: [String: JSONValue]) {
        switch name {
        case "thread.send_message":
            guard let threadID = fields["threadID"]?.stringValue, let text = fields["text"]?.stringValue else { return nil }
            self = .sendMessage(threadID: threadID, text: text)
        case "thread.select":
            guard let threadID = fields["threadID"]?.stringValue else { return nil }
            self = .selectThread(threadID: threadID)
        case "project.select":
            guard let projectID = fields["projectID"]?.stringValue else { return nil }
            self = .selectProject(projectID: projectID)
        case "runtime_request.respond":
            guard let id = fields["runtimeRequestID"]?.stringValue,
                let response = fields["runtimeRequestResponse"].flatMap(RelayRuntimeResponse.init(json:))
            else { return nil }
            let kind = fields["runtimeRequestKind"]?.stringValue.flatMap(RelayRuntimeRequestKind.init(rawValue:))
            self = .respondToRuntimeRequest(id: id, kind: kind, response: response)
        default:
            return nil
        }
    }
}

/// The kinds of request the agent makes of the user (`runtimeRequestKind`).
public enum RelayRuntimeRequestKind: String, Sendable, CaseIterable {
    case approval
    case permissionsApproval
    case userInput
    case mcpElicitation
    case dynamicToolCall
}

/// A decision on an approval request (`runtimeRequestResponse.decision`).
public enum RelayRuntimeDecision: String, Sendable, CaseIterable {
    case accept
    case acceptForSession
    case decline
    case cancel
}

/// The user's answer to a runtime request (`runtimeRequestResponse`); the relay requires at
/// least one member.
public struct RelayRuntimeResponse: Sendable, Equatable {
    /// `decision`.
    public var decision: RelayRuntimeDecision?
    /// `permissions`: each non-blank, at most 256 bytes.
    public var permissions: [String]?
    /// `scope`: non-blank, at most 128 bytes.
    public var scope: String?
    /// `text`: free text (may be empty).
    public var text: String?
    /// `optionID`: a compact identifier of the option chosen.
    public var optionID: String?
    /// `approved`.
    public var approved: Bool?

    /// A response with the given members.
    public init(
        decision: RelayRuntimeDecision? = nil, permissions: [String]? = nil, scope: String? = nil, text: String? = nil,
        optionID: String? = nil, approved: Bool? = nil
    ) {
        self.decision = decision
        self.permissions = permissions
        self.scope = scope
        self.text = text
        self.optionID = optionID
        self.approved = approved
    }

    /// The members as a JSON object.
    public var json: JSONValue {
        var members: [String: JSONValue] = [:]
        if let decision { members["decision"] = .string(decision.rawValue) }
        if let permissions { members["permissions"] = .array(permissions.map(JSONValue.string)) }
        if let scope { members["scope"] = .string(scope) }
        if let text { members["text"] = .string(text) }
        if let optionID { members["optionID"] = .string(optionID) }
        if let approved { members["approved"] = .bool(approved) }
        return .object(members)
    }

    /// Reads a `runtimeRequestResponse` object; `nil` when it is not an object.
    public init?(json: JSONValue) {
        guard let members = json.objectValue else { return nil }
        decision = members["decision"]?.stringValue.flatMap(RelayRuntimeDecision.init(rawValue:))
        permissions = members["permissions"]?.arrayValue?.compactMap(\.stringValue)
        scope = members["scope"]?.stringValue
        text = members["text"]?.stringValue
        optionID = members["optionID"]?.stringValue
        approved = members["approved"]?.boolValue
    }
}

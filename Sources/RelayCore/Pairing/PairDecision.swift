// A desktop's answer to a pairing request.

import RelayProtocol

/// A desktop's `relay.pair_decision` (PROTOCOL §4.6), with the grant fields of extension 10 as sent.
struct PairDecision {
    var sessionID: String?
    var requestID: String?
    var approved: Bool
    var scope: JSONValue?
    var allowedCommands: JSONValue?
    var grantExpiresAt: JSONValue?

    init(sessionID: String? = nil, requestID: String? = nil, approved: Bool) {
        self.sessionID = sessionID
        self.requestID = requestID
        self.approved = approved
    }

    /// The decision in `fields` (a frame's top-level members); nil when a member has the wrong type.
    init?(fields: [String: JSONValue]) {
        self.init(approved: false)
        switch fields["sessionID"] {
        case nil, .null?: break
        case .string(let s)?: sessionID = s
        default: return nil
        }
        switch fields["requestID"] {
        case nil, .null?: break
        case .string(let s)?: requestID = s
        default: return nil
        }
        switch fields["approved"] {
        case nil, .null?: break
        case .bool(let b)?: approved = b
        default: return nil
        }
        scope = fields["scope"]
        allowedCommands = fields["allowedCommands"]
        grantExpiresAt = fields["grantExpiresAt"]
    }

    /// The members a decision is read from.
    static let keys: Set<String> = ["type", "sessionID", "requestID", "approved", "scope", "allowedCommands", "grantExpiresAt"]

    /// The grant an approval gives (nil: none); throws when its fields cannot be used.
    func grant(defaultScope: DeviceScope, now: Int64) throws(DeviceGrant.Refusal) -> DeviceGrant? {
        try DeviceGrant.parse(
            scope: scope, allowedCommands: allowedCommands, grantExpiresAt: grantExpiresAt, defaultScope: defaultScope, now: now)
    }
}

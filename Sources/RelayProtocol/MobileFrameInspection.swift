// Everything the relay decides a phone's frame on, from one parse of it.

/// The stateless verdicts on one phone frame (PROTOCOL §4.7), computed from a single parse: what
/// the relay needs before it takes the session's lock to apply the `seq` guard and the budgets.
public struct MobileFrameInspection: Sendable {
    /// The parsed frame; nil when it is not JSON.
    public let envelope: JSONValue?
    /// A top-level `sessionID` names another session: the frame is dropped silently.
    public let hasForeignSessionID: Bool
    /// The frame is for the desktop, so it fails with `desktop_offline` when none is connected.
    public let requiresDesktop: Bool
    /// Steps 1–12, or the structure of a snapshot request.
    public let kind: Result<MobileFrameKind, MobileError>
    /// `payload.type` is extension 12's `sealed` or `noise` (counted as an end-to-end frame,
    /// whatever the verdict).
    public var isEndToEnd: Bool {
        guard case .string(let type)? = envelope?["payload"]?["type"] else { return false }
        return type == "sealed" || type == "noise"
    }
    /// Step 16 for a command that passed steps 1–12; nil otherwise or when the name is valid.
    public let commandNameError: MobileError?

    /// Parses `text` once and runs every stateless check on the result.
    public init(_ text: [UInt8], sessionID: String, limits: MobileValidationLimits) {
        let parsed = Result { () throws(JSONParseError) -> JSONValue in try JSONValue.parse(text) }
        let value = try? parsed.get()
        envelope = value
        hasForeignSessionID = value.map { MobileFrameValidator.hasForeignSessionID($0, sessionID: sessionID) } ?? false
        requiresDesktop = value.map { MobileFrameValidator.requiresDesktop($0, endToEnd: limits.endToEnd) } ?? false
        kind = MobileFrameValidator.classify(parsed, sessionID: sessionID, limits: limits)
        if case .success(.command) = kind, let value {
            commandNameError = MobileFrameValidator.validateCommandName(value, limits: limits)
        } else {
            commandNameError = nil
        }
    }
}

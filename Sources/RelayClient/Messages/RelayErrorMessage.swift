// A refusal from the relay (PROTOCOL §4.7 `relay.error`): the socket stays open.

import RelayProtocol

/// A `relay.error` a phone receives when the relay refuses something it sent; nothing was
/// forwarded, and the connection stays up.
public struct RelayErrorMessage: Sendable, Equatable, CustomStringConvertible {
    /// The `error` code, as sent.
    public var code: String
    /// The relay's sentence.
    public var message: String

    /// The code as a known value (`desktop_offline`, `invalid_command`, …).
    public var knownCode: MobileErrorCode? { MobileErrorCode(rawValue: code) }

    init?(json: JSONValue) {
        guard json.type == "relay.error", let code = json["error"]?.stringValue else { return nil }
        self.code = code
        self.message = json["message"]?.stringValue ?? ""
    }

    public var description: String { "\(code): \(message)" }
}

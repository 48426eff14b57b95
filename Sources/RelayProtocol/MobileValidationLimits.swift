// The configurable limits that the checks on a phone's frame depend on.

/// The configurable limits the validation depends on.
public struct MobileValidationLimits: Sendable {
    /// `MAX_REMOTE_COMMAND_TEXT_BYTES`: the UTF-8 byte limit of `text` fields.
    public var maxCommandTextBytes: Int
    /// `E2E_MODE` (extension 12): whether `noise` and `sealed` payloads are accepted, and whether
    /// plaintext commands are.
    public var endToEnd: EndToEndMode

    /// Limits with the reference defaults.
    public init(maxCommandTextBytes: Int = 16384, endToEnd: EndToEndMode = .optional) {
        self.maxCommandTextBytes = maxCommandTextBytes
        self.endToEnd = endToEnd
    }
}

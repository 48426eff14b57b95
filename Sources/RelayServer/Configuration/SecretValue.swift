// A configuration value that always prints as <redacted>: secrets, and URLs with credentials.

/// A configuration value that must never reach a log or an error message: an HMAC secret, or a
/// URL that may carry a password or token. However it is printed (`description`,
/// `debugDescription`, `dump`, string interpolation of an enclosing struct) it shows `<redacted>`.
public struct SecretValue: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The secret itself, for the code that needs it.
    public let value: String

    /// Wraps `value`.
    public init(_ value: String) { self.value = value }

    /// Always `<redacted>`.
    public var description: String { "<redacted>" }
    /// Always `<redacted>`.
    public var debugDescription: String { description }
    /// No children: reflection shows nothing of the value.
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

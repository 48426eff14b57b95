// What a desktop app stores to keep its session across restarts.

/// A desktop's session id and session token: generated once, stored by the app (in the keychain),
/// and passed back after a restart so paired phones keep working. The token never rotates.
///
/// The description names the session, never the token.
public struct RelayDesktopIdentity: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The session id (16 random bytes, base64url).
    public var sessionID: String
    /// The desktop session token (32 random bytes, base64url): it authenticates the desktop's
    /// socket and HTTP calls.
    public var desktopSessionToken: String

    /// An identity the app stored earlier.
    public init(sessionID: String, desktopSessionToken: String) {
        self.sessionID = sessionID
        self.desktopSessionToken = desktopSessionToken
    }

    /// A new identity from the system's secure random generator: a 16-byte session id and a 32-byte token, base64url.
    public static func generate() -> RelayDesktopIdentity {
        RelayDesktopIdentity(sessionID: RelayTokens.sessionID(), desktopSessionToken: RelayTokens.token())
    }

    public var description: String {
        "RelayDesktopIdentity(sessionID: \(sessionID), desktopSessionToken: <\(desktopSessionToken.count) characters>)"
    }
}

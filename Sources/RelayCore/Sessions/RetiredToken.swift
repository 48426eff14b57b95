// A rotated-out device token that still authenticates during its grace period.

/// A retired device token that still authenticates until `expiresAtMillis` (PROTOCOL §4.4).
public struct RetiredToken: Sendable, Equatable {
    /// The device token the last rotation replaced.
    public var token: StoredToken
    /// When it stops authenticating, in milliseconds since the Unix epoch: the rotation time plus
    /// `TOKEN_ROTATION_GRACE_MS`.
    public var expiresAtMillis: Int64
    /// A retired token accepted until `expiresAtMillis`.
    public init(token: StoredToken, expiresAtMillis: Int64) {
        self.token = token
        self.expiresAtMillis = expiresAtMillis
    }
}

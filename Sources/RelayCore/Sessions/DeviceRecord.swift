// A phone trusted by a session, and the tokens it may authenticate with.

import RelayProtocol

/// A trusted device of a session.
public struct DeviceRecord: Sendable, Equatable {
    /// The relay-assigned device id (PROTOCOL §1).
    public var deviceID: String
    /// The token the device's next socket auth presents; replaced at every successful auth.
    public var currentToken: StoredToken
    /// Tokens the last rotations replaced, still accepted until their expiry (`TOKEN_ROTATION_GRACE_MS`).
    public var retiredTokens: [RetiredToken]
    /// The name shown to the desktop: the `/pair/join` `deviceName`, or "Mobile Device".
    public var name: String
    /// When the device paired, in milliseconds since the Unix epoch.
    public var joinedAtMillis: Int64
    /// When the device last authenticated a socket (or paired), in milliseconds since the Unix epoch.
    public var lastSeenAtMillis: Int64
    /// What the desktop lets the device do (extension 10); nil: the contract's full access.
    public var grant: DeviceGrant?

    /// A device record with every field given; a newly paired device has no retired tokens.
    public init(
        deviceID: String, currentToken: StoredToken, retiredTokens: [RetiredToken] = [], name: String,
        joinedAtMillis: Int64, lastSeenAtMillis: Int64, grant: DeviceGrant? = nil
    ) {
        self.grant = grant
        self.deviceID = deviceID
        self.currentToken = currentToken
        self.retiredTokens = retiredTokens
        self.name = name
        self.joinedAtMillis = joinedAtMillis
        self.lastSeenAtMillis = lastSeenAtMillis
    }

    /// Whether the token with `digest` authenticates this device at `now`: the current token, or a
    /// retired one not yet expired.
    public func accepts(_ digest: TokenDigest, now: Int64) -> Bool {
        if currentToken.matches(digest) { return true }
        return retiredTokens.contains { $0.expiresAtMillis > now && $0.token.matches(digest) }
    }

    /// Drops retired tokens that have expired; returns true if any were dropped.
    @discardableResult
    public mutating func pruneRetired(now: Int64) -> Bool {
        let before = retiredTokens.count
        retiredTokens.removeAll { $0.expiresAtMillis <= now }
        return retiredTokens.count != before
    }
}

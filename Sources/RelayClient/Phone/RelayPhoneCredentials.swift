// What a phone app stores between launches: enough to reconnect to its session without pairing.

/// A paired phone's credentials: the app persists them (in the keychain) every time they change
/// and passes them back to ``RelayPhoneClient/init(relayURL:credentials:lastProcessedSeq:origin:configuration:onCredentialsChanged:)``
/// after a restart. ``deviceSessionToken`` changes on every successful connection:
/// a stale copy stops working after the relay's grace period, so store each new value.
///
/// The description names the session and device, never the token.
public struct RelayPhoneCredentials: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The session the phone joined.
    public var sessionID: String
    /// The device id the relay issued at the join.
    public var deviceID: String
    /// The token the next connection presents.
    public var deviceSessionToken: String
    /// The session WebSocket URL from the join response, if the relay gave one.
    public var wsURL: String?
    /// The end-to-end keys of a phone that joined through an `e2e=1` link (extension 12); they
    /// change when the desktop pins the phone and with every new epoch.
    public var endToEnd: RelayPhoneEndToEndKeys?

    public init(sessionID: String, deviceID: String, deviceSessionToken: String, wsURL: String? = nil, endToEnd: RelayPhoneEndToEndKeys? = nil) {
        self.sessionID = sessionID
        self.deviceID = deviceID
        self.deviceSessionToken = deviceSessionToken
        self.wsURL = wsURL
        self.endToEnd = endToEnd
    }

    public var description: String {
        "RelayPhoneCredentials(sessionID: \(sessionID), deviceID: \(deviceID), deviceSessionToken: <\(deviceSessionToken.count) characters>\(endToEnd == nil ? "" : ", end-to-end"))"
    }
}

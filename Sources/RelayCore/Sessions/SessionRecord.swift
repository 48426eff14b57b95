// The durable part of a session: what the store holds and every node adopts.

import RelayProtocol

/// The durable part of a session: what the state store keeps (PROTOCOL §6.1). Sockets, presence,
/// rate buckets, seq trackers and pending joins are runtime-only and never stored.
public struct SessionRecord: Sendable, Equatable {
    /// The desktop-chosen session id.
    public var sessionID: String
    /// The token a phone presents to `/pair/join`; redeemable once.
    public var joinToken: StoredToken
    /// When the join token stops being accepted, in milliseconds since the Unix epoch (at most
    /// `MAX_JOIN_TOKEN_TTL_MS` after it was set). Its expiry does not end the session.
    public var joinTokenExpiresAtMillis: Int64
    /// When a `/pair/join` redeemed the join token, in milliseconds since the Unix epoch; nil while
    /// unused (`/pair/refresh` sets a new, unused one).
    public var joinTokenUsedAtMillis: Int64?
    /// The desktop's token: authenticates its socket and its management requests; never rotates.
    public var desktopSessionToken: StoredToken
    /// The `wsURL` handed to the desktop and to its phones.
    public var relayWebSocketURL: String
    /// Seconds without activity after which a session with no sockets and no trusted device is
    /// swept (at least 60 applied): `/pair/start`'s `idleTimeoutSeconds`, clamped to 60…86 400.
    public var idleTimeoutSeconds: UInt64
    /// When `/pair/start` created the session, in milliseconds since the Unix epoch: where
    /// `SESSION_RETENTION_MS` counts from, and what tells a replacement under the same id apart.
    public var createdAtMillis: Int64
    /// The last activity (PROTOCOL §5), in milliseconds since the Unix epoch: where idle timeouts
    /// and `TRUSTED_SESSION_TTL_MS` count from.
    public var lastActivityAtMillis: Int64
    /// The trusted devices, by device id.
    public var devices: [String: DeviceRecord]
    /// The W3C `traceparent` of the `/pair/start` that made the session, when that node traced:
    /// the desktop's first connection and the phone's join, on whichever node, join its trace.
    public var pairingTraceparent: String?

    /// A record with every field given; a new session has an unused join token and no devices.
    public init(
        sessionID: String, joinToken: StoredToken, joinTokenExpiresAtMillis: Int64, joinTokenUsedAtMillis: Int64? = nil,
        desktopSessionToken: StoredToken, relayWebSocketURL: String, idleTimeoutSeconds: UInt64, createdAtMillis: Int64,
        lastActivityAtMillis: Int64, devices: [String: DeviceRecord] = [:], pairingTraceparent: String? = nil
    ) {
        self.pairingTraceparent = pairingTraceparent
        self.sessionID = sessionID
        self.joinToken = joinToken
        self.joinTokenExpiresAtMillis = joinTokenExpiresAtMillis
        self.joinTokenUsedAtMillis = joinTokenUsedAtMillis
        self.desktopSessionToken = desktopSessionToken
        self.relayWebSocketURL = relayWebSocketURL
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.createdAtMillis = createdAtMillis
        self.lastActivityAtMillis = lastActivityAtMillis
        self.devices = devices
    }
}

extension SessionRecord {
    /// The digests of every token that can authenticate a socket of this session: the desktop's,
    /// then each device's current and retired tokens (those still in their grace period or not).
    public var authTokenDigests: [TokenDigest] {
        var digests = [desktopSessionToken.digest]
        for device in devices.values {
            digests.append(device.currentToken.digest)
            digests.append(contentsOf: device.retiredTokens.map(\.token.digest))
        }
        return digests
    }

    /// Whether every token of the record is known in clear, so it can be written in the reference
    /// layout (`REDIS_TOKEN_STORAGE=plain`).
    public var knowsEveryTokenInClear: Bool {
        joinToken.clear != nil && desktopSessionToken.clear != nil
            && devices.values.allSatisfy { d in d.currentToken.clear != nil && d.retiredTokens.allSatisfy { $0.token.clear != nil } }
    }

    /// Records activity at `now`; activity never moves back.
    mutating func touch(_ now: Int64) {
        if now > lastActivityAtMillis { lastActivityAtMillis = now }
    }

    /// Drops every device's expired retired tokens; returns true if any were dropped.
    @discardableResult
    mutating func pruneRetiredTokens(now: Int64) -> Bool {
        var pruned = false
        for id in devices.keys where devices[id]!.pruneRetired(now: now) { pruned = true }
        return pruned
    }
}

extension SessionRecord {
    /// The same session rather than a new one with the same id (a `/pair/start` replacement).
    func isSameIncarnation(as other: SessionRecord) -> Bool {
        createdAtMillis == other.createdAtMillis
            && desktopSessionToken.matches(other.desktopSessionToken.digest)
    }
}

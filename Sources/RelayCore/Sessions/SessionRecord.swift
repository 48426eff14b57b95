// The durable part of a session: what the store holds and every node adopts.

import RelayProtocol

/// A retired device token that still authenticates until `expiresAtMillis` (PROTOCOL §4.4).
public struct RetiredToken: Sendable, Equatable {
    public var token: String
    public var expiresAtMillis: Int64
    public init(token: String, expiresAtMillis: Int64) {
        self.token = token
        self.expiresAtMillis = expiresAtMillis
    }
}

/// A trusted device of a session.
public struct DeviceRecord: Sendable, Equatable {
    public var deviceID: String
    public var currentToken: String
    public var retiredTokens: [RetiredToken]
    public var name: String
    public var joinedAtMillis: Int64
    public var lastSeenAtMillis: Int64

    public init(
        deviceID: String, currentToken: String, retiredTokens: [RetiredToken] = [], name: String,
        joinedAtMillis: Int64, lastSeenAtMillis: Int64
    ) {
        self.deviceID = deviceID
        self.currentToken = currentToken
        self.retiredTokens = retiredTokens
        self.name = name
        self.joinedAtMillis = joinedAtMillis
        self.lastSeenAtMillis = lastSeenAtMillis
    }

    /// Whether `token` authenticates this device at `now`: the current token, or a retired one not yet expired.
    public func accepts(_ token: String, now: Int64) -> Bool {
        if Identifiers.constantTimeEqual(currentToken, token) { return true }
        return retiredTokens.contains { $0.expiresAtMillis > now && Identifiers.constantTimeEqual($0.token, token) }
    }

    /// Drops retired tokens that have expired; returns true if any were dropped.
    @discardableResult
    public mutating func pruneRetired(now: Int64) -> Bool {
        let before = retiredTokens.count
        retiredTokens.removeAll { $0.expiresAtMillis <= now }
        return retiredTokens.count != before
    }
}

/// The durable part of a session: what the state store keeps (PROTOCOL §6.1). Sockets, presence,
/// rate buckets, seq trackers and pending joins are runtime-only and never stored.
public struct SessionRecord: Sendable, Equatable {
    public var sessionID: String
    public var joinToken: String
    public var joinTokenExpiresAtMillis: Int64
    public var joinTokenUsedAtMillis: Int64?
    public var desktopSessionToken: String
    public var relayWebSocketURL: String
    public var idleTimeoutSeconds: UInt64
    public var createdAtMillis: Int64
    public var lastActivityAtMillis: Int64
    public var devices: [String: DeviceRecord]

    public init(
        sessionID: String, joinToken: String, joinTokenExpiresAtMillis: Int64, joinTokenUsedAtMillis: Int64? = nil,
        desktopSessionToken: String, relayWebSocketURL: String, idleTimeoutSeconds: UInt64, createdAtMillis: Int64,
        lastActivityAtMillis: Int64, devices: [String: DeviceRecord] = [:]
    ) {
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
    /// Records activity at `now`; activity never moves back.
    /// Every token that can authenticate a socket of this session: the desktop's, then each
    /// device's current and retired tokens (those still in their grace period or not).
    public var authTokens: [String] {
        var tokens = [desktopSessionToken]
        for device in devices.values {
            tokens.append(device.currentToken)
            tokens.append(contentsOf: device.retiredTokens.map(\.token))
        }
        return tokens
    }

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
            && Identifiers.constantTimeEqual(desktopSessionToken, other.desktopSessionToken)
    }
}

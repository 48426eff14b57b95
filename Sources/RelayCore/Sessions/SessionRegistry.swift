// This node's sessions by id, and the two token indexes auth looks tokens up in.

import Synchronization

/// Sessions by id, in shards so that finding one session (a bus frame, an HTTP request) never
/// takes a lock every session shares, and the two token indexes (PROTOCOL §1: desktop-token index
/// first, then the device-token index), which only auth, adoption and sweeping use. The indexes
/// are keyed by token digest, as the store is: a node holds no token it did not just issue.
///
/// Lock order: a session's lock, then a shard's, then the token indexes'; never the reverse.
/// The indexes are hints: whoever finds a token re-checks it under the session's lock.
final class SessionRegistry: Sendable {
    struct DeviceTokenEntry {
        let sessionID: String
        let deviceID: String
        /// nil for a current token; the grace expiry for a retired one.
        var expiresAtMillis: Int64?
    }

    struct TokenIndexes {
        var desktopTokens: [TokenDigest: String] = [:]
        var deviceTokens: [TokenDigest: DeviceTokenEntry] = [:]
    }

    private let sessions = LockShards<[String: Session]>(count: 64) { [:] }
    let tokens = Mutex(TokenIndexes())

    func session(_ id: String) -> Session? { sessions.withLock(for: id) { $0[id] } }

    var allSessions: [Session] {
        var all: [Session] = []
        sessions.forEach { all.append(contentsOf: $0.values) }
        return all
    }

    var sessionCount: Int {
        var count = 0
        sessions.forEach { count += $0.count }
        return count
    }

    var deviceTokenCount: Int { tokens.withLock { $0.deviceTokens.count } }

    /// Inserts `session` with its record's tokens unless the id is taken; false if it was. The
    /// tokens are indexed under the shard's lock, so nobody finds the session before its tokens
    /// are in (a change made to it then would be overwritten by the older record's tokens).
    func insert(_ session: Session, record: SessionRecord, now: Int64) -> Bool {
        sessions.withLock(for: session.id) { sessions -> Bool in
            guard sessions[session.id] == nil else { return false }
            sessions[session.id] = session
            tokens.withLock { Self.index(record, into: &$0, now: now) }
            return true
        }
    }

    /// Removes `session` (if it is still the one under its id) and its record's tokens, both under
    /// the shard's lock, so a new incarnation inserted meanwhile keeps its own.
    func remove(_ session: Session, record: SessionRecord) {
        sessions.withLock(for: session.id) { sessions in
            if sessions[session.id] === session { sessions[session.id] = nil }
            tokens.withLock { Self.unindex(record, from: &$0) }
        }
    }

    /// Re-indexes the tokens of a session whose record changed from `previous` to `current`.
    func reindex(from previous: SessionRecord, to current: SessionRecord, now: Int64) {
        tokens.withLock { ix in
            Self.unindex(previous, from: &ix)
            Self.index(current, into: &ix, now: now)
        }
    }

    func owner(ofToken digest: TokenDigest, now: Int64) -> TokenOwner? {
        let found: (sessionID: String, deviceID: String?)? = tokens.withLock { ix in
            if let sid = ix.desktopTokens[digest] { return (sid, nil) }
            if let entry = ix.deviceTokens[digest], entry.expiresAtMillis.map({ $0 > now }) ?? true {
                return (entry.sessionID, entry.deviceID)
            }
            return nil
        }
        guard let found, let session = session(found.sessionID) else { return nil }
        if let deviceID = found.deviceID { return .device(session, deviceID: deviceID) }
        return .desktop(session)
    }

    /// Indexes every token of `record` (current device tokens, unexpired retired ones, the desktop token).
    static func index(_ record: SessionRecord, into ix: inout TokenIndexes, now: Int64) {
        ix.desktopTokens[record.desktopSessionToken.digest] = record.sessionID
        for device in record.devices.values {
            ix.deviceTokens[device.currentToken.digest] = .init(
                sessionID: record.sessionID, deviceID: device.deviceID, expiresAtMillis: nil)
            for retired in device.retiredTokens where retired.expiresAtMillis > now {
                ix.deviceTokens[retired.token.digest] = .init(
                    sessionID: record.sessionID, deviceID: device.deviceID, expiresAtMillis: retired.expiresAtMillis)
            }
        }
    }

    /// Removes every token of `record` that still points at this session.
    static func unindex(_ record: SessionRecord, from ix: inout TokenIndexes) {
        if ix.desktopTokens[record.desktopSessionToken.digest] == record.sessionID {
            ix.desktopTokens[record.desktopSessionToken.digest] = nil
        }
        for device in record.devices.values {
            removeDeviceTokens(
                [device.currentToken.digest] + device.retiredTokens.map(\.token.digest), sessionID: record.sessionID, from: &ix)
        }
    }

    /// Removes `tokens` where they still point at `sessionID`.
    func removeDeviceTokens(_ tokens: [TokenDigest], sessionID: String) {
        self.tokens.withLock { Self.removeDeviceTokens(tokens, sessionID: sessionID, from: &$0) }
    }

    static func removeDeviceTokens(_ tokens: [TokenDigest], sessionID: String, from ix: inout TokenIndexes) {
        for token in tokens where ix.deviceTokens[token]?.sessionID == sessionID {
            ix.deviceTokens[token] = nil
        }
    }

    /// Drops expired grace entries; returns how many.
    func pruneExpiredTokens(now: Int64) -> Int {
        tokens.withLock { ix in
            let expired = ix.deviceTokens.filter { $0.value.expiresAtMillis.map { $0 <= now } ?? false }.map(\.key)
            for token in expired { ix.deviceTokens[token] = nil }
            return expired.count
        }
    }
}

import Synchronization

/// Who a WebSocket auth token belongs to.
enum TokenOwner {
    case desktop(Session)
    case device(Session, deviceID: String)
}

/// Sessions by id and the two token indexes (PROTOCOL §1: desktop-token index first, then the
/// device-token index). Used by HTTP, auth and sweeping — never on the per-message path.
///
/// Lock order: a session's lock may be held while taking the registry's, never the reverse.
/// The indexes are hints: whoever finds a token re-checks it under the session's lock.
final class SessionRegistry: Sendable {
    struct DeviceTokenEntry {
        let sessionID: String
        let deviceID: String
        /// nil for a current token; the grace expiry for a retired one.
        var expiresAtMillis: Int64?
    }

    struct Indexes {
        var sessions: [String: Session] = [:]
        var desktopTokens: [String: String] = [:]
        var deviceTokens: [String: DeviceTokenEntry] = [:]
    }

    let indexes = Mutex(Indexes())

    func session(_ id: String) -> Session? { indexes.withLock { $0.sessions[id] } }

    var allSessions: [Session] { indexes.withLock { Array($0.sessions.values) } }

    var counts: (sessions: Int, deviceTokens: Int) {
        indexes.withLock { ($0.sessions.count, $0.deviceTokens.count) }
    }

    func owner(ofToken token: String, now: Int64) -> TokenOwner? {
        indexes.withLock { ix in
            if let sid = ix.desktopTokens[token], let session = ix.sessions[sid] { return .desktop(session) }
            if let entry = ix.deviceTokens[token], entry.expiresAtMillis.map({ $0 > now }) ?? true,
                let session = ix.sessions[entry.sessionID]
            {
                return .device(session, deviceID: entry.deviceID)
            }
            return nil
        }
    }

    /// Indexes every token of `record` (current device tokens, unexpired retired ones, the desktop token).
    static func index(_ record: SessionRecord, into ix: inout Indexes, now: Int64) {
        ix.desktopTokens[record.desktopSessionToken] = record.sessionID
        for device in record.devices.values {
            ix.deviceTokens[device.currentToken] = .init(sessionID: record.sessionID, deviceID: device.deviceID, expiresAtMillis: nil)
            for retired in device.retiredTokens where retired.expiresAtMillis > now {
                ix.deviceTokens[retired.token] = .init(
                    sessionID: record.sessionID, deviceID: device.deviceID, expiresAtMillis: retired.expiresAtMillis)
            }
        }
    }

    /// Removes every token of `record` that still points at this session.
    static func unindex(_ record: SessionRecord, from ix: inout Indexes) {
        if ix.desktopTokens[record.desktopSessionToken] == record.sessionID {
            ix.desktopTokens[record.desktopSessionToken] = nil
        }
        for device in record.devices.values {
            removeDeviceTokens([device.currentToken] + device.retiredTokens.map(\.token), sessionID: record.sessionID, from: &ix)
        }
    }

    static func removeDeviceTokens(_ tokens: [String], sessionID: String, from ix: inout Indexes) {
        for token in tokens where ix.deviceTokens[token]?.sessionID == sessionID {
            ix.deviceTokens[token] = nil
        }
    }

    /// Drops expired grace entries; returns how many.
    func pruneExpiredTokens(now: Int64) -> Int {
        indexes.withLock { ix in
            let expired = ix.deviceTokens.filter { $0.value.expiresAtMillis.map { $0 <= now } ?? false }.map(\.key)
            for token in expired { ix.deviceTokens[token] = nil }
            return expired.count
        }
    }
}

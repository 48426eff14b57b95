// The session subjects this node wants, shared by callers, the bus thread and deliveries.

import RelayCore

/// The session subjects this node wants, shared by the caller side (`setSubscribed`), the bus
/// thread (which subscribes) and the delivery threads (which drop traffic for sessions no longer
/// wanted).
///
/// Sharded by session id: every delivered frame asks `contains`, so no lock is shared by all
/// sessions.
final class WantedSessions: Sendable {
    private let sessions = LockShards<Set<String>>(count: 64) { [] }

    /// Adds or removes `sessionID`; true when that changed the set.
    func set(_ wanted: Bool, sessionID: String) -> Bool {
        sessions.withLock(for: sessionID) { wanted ? $0.insert(sessionID).inserted : $0.remove(sessionID) != nil }
    }

    func contains(_ sessionID: String) -> Bool { sessions.withLock(for: sessionID) { $0.contains(sessionID) } }

    var all: Set<String> {
        var all: Set<String> = []
        sessions.forEach { all.formUnion($0) }
        return all
    }

    var count: Int {
        var count = 0
        sessions.forEach { count += $0.count }
        return count
    }
}

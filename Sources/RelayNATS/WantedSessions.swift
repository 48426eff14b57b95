// The session subjects this node wants, shared by callers, the bus thread and deliveries.

import Synchronization

/// The session subjects this node wants, shared by the caller side (`setSubscribed`), the bus
/// thread (which subscribes) and the delivery threads (which drop traffic for sessions no longer
/// wanted).
final class WantedSessions: Sendable {
    private let sessions = Mutex<Set<String>>([])

    /// Adds or removes `sessionID`; true when that changed the set.
    func set(_ wanted: Bool, sessionID: String) -> Bool {
        sessions.withLock { wanted ? $0.insert(sessionID).inserted : $0.remove(sessionID) != nil }
    }

    func contains(_ sessionID: String) -> Bool { sessions.withLock { $0.contains(sessionID) } }

    var all: Set<String> { sessions.withLock { $0 } }

    var count: Int { sessions.withLock { $0.count } }
}

// One session on this node: its id and its state under its own lock.

import Synchronization

/// One session on this node: its id and its state under its own lock. No lock is shared by all
/// sessions on the message path.
final class Session: Sendable {
    let id: String
    let state: Mutex<SessionState>

    init(record: SessionRecord, version: UInt64) {
        self.id = record.sessionID
        self.state = Mutex(SessionState(record: record, version: version))
    }
}

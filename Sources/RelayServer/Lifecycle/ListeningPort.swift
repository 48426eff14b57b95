// The port the listener was bound to, once it is.

import Synchronization

/// The listener's port, known once it is bound.
final class ListeningPort: Sendable {
    private let port = Mutex<Int?>(nil)
    var value: Int? { port.withLock { $0 } }
    func set(_ value: Int) { port.withLock { $0 = value } }
}

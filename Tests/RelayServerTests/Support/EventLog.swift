import RelayTestClient
import RelayTestSupport
import Synchronization

/// Everything a client library's `events` stream delivers, collected by a task of its own so a
/// test can wait for the event it needs without holding the stream's iterator.
final class EventLog<Event: Sendable>: Sendable {
    private final class Storage: Sendable {
        let events = Mutex<[Event]>([])
        let finished = Mutex(false)
    }

    private let storage = Storage()
    private let consumer: Task<Void, Never>

    init(_ stream: AsyncStream<Event>) {
        let storage = self.storage
        consumer = Task {
            for await event in stream { storage.events.withLock { $0.append(event) } }
            storage.finished.withLock { $0 = true }
        }
    }

    deinit { consumer.cancel() }

    /// Every event so far, in order.
    var all: [Event] { storage.events.withLock { $0 } }

    /// Whether the stream has finished.
    var isFinished: Bool { storage.finished.withLock { $0 } }

    /// The first event from index `start` on that `match` accepts, waiting up to `timeout`.
    ///
    /// - Throws: `TestFailure` listing what did arrive when none does.
    @discardableResult
    func first<T>(from start: Int = 0, timeout: Duration = .seconds(30), _ match: (Event) -> T?) async throws -> T {
        var found: T?
        _ = await eventually(timeout: timeout) {
            let snapshot = all
            found = snapshot.dropFirst(start).lazy.compactMap(match).first
            return found != nil
        }
        guard let found else { throw TestFailure("no matching event within \(timeout); saw \(all)") }
        return found
    }

    /// How many events matching `match` have arrived.
    func count(_ match: (Event) -> Bool) -> Int { all.filter(match).count }
}

// A client's event stream turned into "wait for the event I need", with a deadline.

import Synchronization

/// Collects a client's events as they come and hands a waiter the first one it is looking for.
/// Events nobody waited for stay in the box (a later step may want them).
final class EventMailbox<Event: Sendable>: Sendable {
    private struct Waiter {
        let match: @Sendable (Event) -> Bool
        let continuation: CheckedContinuation<Event?, Never>
    }

    private struct State {
        var events: [Event] = []
        var waiters: [Int: Waiter] = [:]
        var nextID = 0
        var finished = false
    }

    /// The state, in a box the consuming task can hold.
    private final class Box: Sendable {
        let state = Mutex(State())
    }

    private let box = Box()
    private let consumer: Task<Void, Never>

    init(_ stream: AsyncStream<Event>) {
        let box = self.box
        consumer = Task {
            for await event in stream { Self.deliver(event, box.state) }
            let waiters = box.state.withLock { state -> [Waiter] in
                state.finished = true
                defer { state.waiters = [:] }
                return Array(state.waiters.values)
            }
            for waiter in waiters { waiter.continuation.resume(returning: nil) }
        }
    }

    deinit { consumer.cancel() }

    private static func deliver(_ event: Event, _ state: borrowing Mutex<State>) {
        let waiter = state.withLock { state -> Waiter? in
            if let (id, waiter) = state.waiters.first(where: { $0.value.match(event) }) {
                state.waiters[id] = nil
                return waiter
            }
            state.events.append(event)
            return nil
        }
        waiter?.continuation.resume(returning: event)
    }

    /// The first event (already in the box, or still to come) `match` accepts; `nil` when the
    /// stream ends first or the task is cancelled (the step's deadline).
    func next(_ match: @escaping @Sendable (Event) -> Bool) async -> Event? {
        let box = self.box
        let id = box.state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Event?, Never>) in
                let immediate = box.state.withLock { state -> Event?? in
                    if let index = state.events.firstIndex(where: match) { return .some(state.events.remove(at: index)) }
                    if state.finished || Task.isCancelled { return .some(nil) }
                    state.waiters[id] = Waiter(match: match, continuation: continuation)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = box.state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.continuation.resume(returning: nil)
        }
    }
}

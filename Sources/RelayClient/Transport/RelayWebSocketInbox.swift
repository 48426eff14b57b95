// The inbound side of a RelayWebSocket: an unbounded FIFO filled on the event loop, read by one task.

import NIOCore
import Synchronization

/// The hand-off between the channel handler (producer, on the event loop) and the single reader task.
///
/// All state sits behind one `Mutex`; no method suspends or resumes a continuation while holding it.
/// A reader that finds the queue empty parks one continuation, which is resumed by the next event,
/// by the end of the stream (with `.closed`), by its timeout (with `nil`; the timer is a task
/// scheduled on the channel's event loop, not a Swift `Task`), or by cancellation. Every path removes
/// the waiter under the lock before resuming it, so each continuation is resumed exactly once.
final class RelayWebSocketInbox: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<RelayWebSocketEvent?, any Error>
        var timer: Scheduled<Void>?
    }

    private struct State {
        var events: [RelayWebSocketEvent] = []
        var head = 0
        var finished = false
        var waiter: Waiter?
        var nextWaiterID: UInt64 = 0
        var closeSent = false
        var failure: String?

        var isEmpty: Bool { head == events.count }

        mutating func popFirst() -> RelayWebSocketEvent? {
            guard head < events.count else { return nil }
            let event = events[head]
            head += 1
            if head == events.count {
                events.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024, head * 2 >= events.count {
                events.removeFirst(head)
                head = 0
            }
            return event
        }
    }

    private let state = Mutex(State())

    // MARK: Producer side (event loop)

    /// Appends `event`, or hands it straight to a parked reader. Ignored after ``finish()``.
    func push(_ event: RelayWebSocketEvent) {
        let waiter: Waiter? = state.withLock { state in
            guard !state.finished else { return nil }
            if let waiter = state.waiter {
                // A parked reader implies an empty queue: deliver directly.
                state.waiter = nil
                return waiter
            }
            state.events.append(event)
            return nil
        }
        if let waiter {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: event)
        }
    }

    /// Marks the end of the stream; a parked reader gets `.closed`. Buffered events stay readable.
    func finish() {
        let waiter: Waiter? = state.withLock { state in
            state.finished = true
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        if let waiter {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: .closed)
        }
    }

    /// Remembers the first transport error, for ``RelayWebSocket/failureDescription``.
    func recordFailure(_ description: String) {
        state.withLock { state in
            if state.failure == nil { state.failure = description }
        }
    }

    /// The first transport error recorded, if any.
    var failure: String? { state.withLock { $0.failure } }

    /// Sets the "close frame sent" flag and returns its previous value.
    func markCloseSent() -> Bool {
        state.withLock { state in
            let previous = state.closeSent
            state.closeSent = true
            return previous
        }
    }

    /// Whether a close frame has been sent on this connection.
    var closeSent: Bool { state.withLock { $0.closeSent } }

    // MARK: Consumer side (one task)

    /// The next event, waiting up to `timeout` on `eventLoop`; `nil` when the timeout passes first.
    func next(timeout: Duration, eventLoop: any EventLoop) async throws -> RelayWebSocketEvent? {
        try Task.checkCancellation()
        enum Poll {
            case event(RelayWebSocketEvent)
            case empty(waiterID: UInt64)
        }
        let poll: Poll = state.withLock { state in
            if let event = state.popFirst() { return .event(event) }
            if state.finished { return .event(.closed) }
            state.nextWaiterID &+= 1
            return .empty(waiterID: state.nextWaiterID)
        }
        let id: UInt64
        switch poll {
        case .event(let event): return event
        case .empty(let waiterID): id = waiterID
        }
        if timeout <= .zero { return nil }

        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<RelayWebSocketEvent?, any Error>) in
                enum Registration {
                    case parked
                    case ready(RelayWebSocketEvent)
                    case busy
                }
                let registration: Registration = state.withLock { state in
                    if let event = state.popFirst() { return .ready(event) }
                    if state.finished { return .ready(.closed) }
                    if state.waiter != nil { return .busy }
                    state.waiter = Waiter(id: id, continuation: continuation, timer: nil)
                    return .parked
                }
                switch registration {
                case .ready(let event):
                    continuation.resume(returning: event)
                    return
                case .busy:
                    continuation.resume(throwing: RelayClientError.concurrentReceive)
                    return
                case .parked:
                    break
                }
                let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
                    self.release(id: id, with: .success(nil))
                }
                let attached = state.withLock { state -> Bool in
                    guard state.waiter?.id == id else { return false }
                    state.waiter?.timer = timer
                    return true
                }
                if !attached { timer.cancel() }
                // Cancellation that happened before the waiter was parked is not seen by onCancel.
                if Task.isCancelled { release(id: id, with: .failure(CancellationError())) }
            }
        } onCancel: {
            self.release(id: id, with: .failure(CancellationError()))
        }
    }

    /// Resumes the parked waiter `id` (if it is still parked) with `result`.
    private func release(id: UInt64, with result: Result<RelayWebSocketEvent?, any Error>) {
        let waiter: Waiter? = state.withLock { state in
            guard let waiter = state.waiter, waiter.id == id else { return nil }
            state.waiter = nil
            return waiter
        }
        guard let waiter else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(with: result)
    }
}

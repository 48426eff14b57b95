// A one-way latch that wakes whoever waits on it: how close() stops a connection loop mid-backoff.

import Synchronization

/// Set once by `close()`; waiters (a backoff sleep) wake at once.
final class CloseSignal: Sendable {
    private struct State {
        var isClosed = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    var isClosed: Bool { state.withLock { $0.isClosed } }

    /// Closes the latch; returns whether this call closed it.
    @discardableResult
    func close() -> Bool {
        let (closed, waiters) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
            guard !state.isClosed else { return (false, []) }
            state.isClosed = true
            defer { state.waiters = [:] }
            return (true, Array(state.waiters.values))
        }
        for waiter in waiters { waiter.resume() }
        return closed
    }

    /// Sleeps for `duration`, or less if the latch closes or the task is cancelled.
    func sleep(for duration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask { await self.wait() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns once the latch is closed or the task is cancelled.
    private func wait() async {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.isClosed || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

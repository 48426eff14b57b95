// A FIFO handed from any thread to one dedicated thread, which sleeps on it.

/// An unbounded FIFO whose single consumer, a dedicated thread, sleeps until there is work, the
/// queue is closed, or a deadline passes. `push` never blocks beyond the lock; the consumer takes
/// everything queued at once. Built on ``ConditionLock``, the one blocking primitive.
public final class WorkQueue<Job: Sendable>: Sendable {
    private struct State {
        var jobs: [Job] = []
        var closed = false
    }

    private let lock = ConditionLock(State())

    /// An empty, open queue.
    public init() {}

    /// Appends `job`; false (and dropped) once the queue is closed.
    @discardableResult
    public func push(_ job: Job) -> Bool {
        let wake = lock.withLock { state -> Bool? in
            guard !state.closed else { return nil }
            state.jobs.append(job)
            return state.jobs.count == 1
        }
        guard let wake else { return false }
        if wake { lock.broadcast() }
        return true
    }

    /// Stops accepting jobs and wakes the consumer; what was queued can still be taken.
    public func close() {
        lock.withLock { $0.closed = true }
        lock.broadcast()
    }

    /// Everything queued, in order, waiting until there is something, the queue is closed, or
    /// `timeoutMillis` passed (nil waits without limit). `closed` is true once the queue is closed.
    public func takeAll(timeoutMillis: Int64?) -> (jobs: [Job], closed: Bool) {
        let deadline = timeoutMillis.map { monotonicNanoseconds() &+ UInt64(max($0, 0)) * 1_000_000 }
        return lock.wait(until: { !$0.jobs.isEmpty || $0.closed }, deadline: deadline) { state in
            var taken: [Job] = []
            swap(&taken, &state.jobs)
            return (taken, state.closed)
        }
    }
}

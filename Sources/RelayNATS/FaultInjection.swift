// Failures that tests inject (subscribes, the bus thread), to exercise paths real servers rarely take.

import Synchronization

/// Failures a test asks for, to exercise the paths real servers rarely take.
final class FaultInjection: Sendable {
    private let subscribeFailures = Atomic<Int>(0)
    private let threadStartFailure = Atomic<Bool>(false)

    /// The bus thread will not start, as when the system refuses a new thread.
    func failThreadStart() { threadStartFailure.store(true, ordering: .relaxed) }

    /// True when the bus thread should fail to start now.
    var threadStartFails: Bool { threadStartFailure.load(ordering: .relaxed) }

    /// The next `count` subscribe calls fail.
    func failSubscriptions(_ count: Int) { subscribeFailures.add(count, ordering: .relaxed) }

    /// Subscribe calls succeed again (the failures still pending are dropped).
    func stopFailingSubscriptions() { subscribeFailures.store(0, ordering: .relaxed) }

    /// True (and one fewer pending) when a subscribe should fail now.
    func takeSubscribeFailure() -> Bool {
        var pending = subscribeFailures.load(ordering: .relaxed)
        while pending > 0 {
            let (exchanged, original) = subscribeFailures.compareExchange(
                expected: pending, desired: pending - 1, ordering: .relaxed)
            if exchanged { return true }
            pending = original
        }
        return false
    }
}

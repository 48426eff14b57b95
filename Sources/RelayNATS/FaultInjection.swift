// Subscribe failures that tests inject, to exercise paths real servers rarely take.

import Synchronization

/// Failures a test asks for, to exercise the paths real servers rarely take.
final class FaultInjection: Sendable {
    private let subscribeFailures = Atomic<Int>(0)

    /// The next `count` subscribe calls fail.
    func failSubscriptions(_ count: Int) { subscribeFailures.add(count, ordering: .relaxed) }

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

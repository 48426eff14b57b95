// Shared state for the many tasks of a run.

import Synchronization

/// A mutex-protected value that concurrent tasks can capture (a `Mutex` local cannot be).
package final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    package init(_ value: Value) { mutex = Mutex(value) }
    package func withLock<Result>(_ body: (inout Value) -> Result) -> Result { mutex.withLock { body(&$0) } }
}

/// A thread-safe counter for progress lines.
package final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    package init() {}
    package func increment(by amount: Int = 1) { count.add(amount, ordering: .relaxed) }
    package var value: Int { count.load(ordering: .relaxed) }
}

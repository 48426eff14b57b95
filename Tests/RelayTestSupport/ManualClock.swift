// A clock a test moves by hand, for time-driven behaviour without waiting and without races.

import RelayCore
import Synchronization

/// A ``RelayClock`` that stands still until the test calls ``advance(byMillis:)``. Sleepers wake
/// when the clock reaches their deadline, in deadline order; a cancelled sleeper throws at once.
/// Tests of retention, grace, sweeps and approval timeouts use it instead of wall-clock budgets.
package final class ManualClock: RelayClock {
    private struct Sleeper {
        let id: UInt64
        let deadline: Int64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Int64
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        var cancelled: Set<UInt64> = []
    }

    private let state: Mutex<State>

    /// A clock reading `startMillis` (by default the wall clock at creation, so records look real).
    package init(startMillis: Int64 = wallClockMillis()) {
        state = Mutex(State(now: startMillis))
    }

    package func nowMillis() -> Int64 { state.withLock { $0.now } }

    /// How many tasks are sleeping on this clock (a test waits for the sweeper to be asleep
    /// before it moves the clock).
    package var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    package func sleep(millis: Int64) async throws {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { s in
                    if s.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    if millis <= 0 { return .success(()) }
                    s.sleepers.append(Sleeper(id: id, deadline: s.now + millis, continuation: continuation))
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let sleeper: Sleeper? = state.withLock { s in
                guard let index = s.sleepers.firstIndex(where: { $0.id == id }) else {
                    s.cancelled.insert(id)
                    return nil
                }
                return s.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward and wakes every sleeper whose deadline it reached.
    package func advance(byMillis millis: Int64) {
        let woken: [Sleeper] = state.withLock { s in
            s.now += millis
            let due = s.sleepers.filter { $0.deadline <= s.now }.sorted { $0.deadline < $1.deadline }
            s.sleepers.removeAll { $0.deadline <= s.now }
            return due
        }
        for sleeper in woken { sleeper.continuation.resume() }
    }
}

// A NATS bus's life, created → running → stopping → stopped, and who waits for its end.

import Synchronization

/// Created → running → stopping → stopped, and who waits for stopped.
final class BusLifecycle: Sendable {
    private enum Phase { case created, running, stopping, stopped }

    enum StopAction {
        /// Nothing runs (never started, or already stopped): return now.
        case stopped
        /// The first stop request of a running bus: tell the thread.
        case stopThread
        /// Already stopping: the waiter is resumed when the thread ends.
        case wait
    }

    private let state = Mutex<(phase: Phase, waiters: [CheckedContinuation<Void, Never>])>((.created, []))

    /// True once started (also while and after stopping).
    var hasStarted: Bool { state.withLock { $0.phase != .created } }

    /// Created → running; false in any other phase.
    func beginStart() -> Bool {
        state.withLock { state in
            guard state.phase == .created else { return false }
            state.phase = .running
            return true
        }
    }

    /// Registers `waiter` unless nothing is running.
    func requestStop(_ waiter: CheckedContinuation<Void, Never>) -> StopAction {
        state.withLock { state in
            switch state.phase {
            case .created, .stopped:
                state.phase = .stopped
                return .stopped
            case .running:
                state.phase = .stopping
                state.waiters.append(waiter)
                return .stopThread
            case .stopping:
                state.waiters.append(waiter)
                return .wait
            }
        }
    }

    /// The thread has ended: resume everyone waiting.
    func finished() {
        let waiters = state.withLock { state in
            state.phase = .stopped
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

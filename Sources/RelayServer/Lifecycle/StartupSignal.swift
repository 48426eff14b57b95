// A one-time signal from the relay's own work to the listener: the node is ready to take traffic.

import Synchronization

/// Fired once when the node has restored its sessions and joined the bus; the listener waits for
/// it, so no request reaches a node that has not loaded what the cluster holds.
final class StartupSignal: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let fired = Atomic(false)

    init() {
        (stream, continuation) = AsyncStream<Void>.makeStream()
    }

    /// The node is ready.
    func fire() {
        fired.store(true, ordering: .releasing)
        continuation.finish()
    }

    /// Returns once fired (true), or when the task is cancelled first (false).
    func wait() async -> Bool {
        for await _ in stream {}
        return fired.load(ordering: .acquiring)
    }
}

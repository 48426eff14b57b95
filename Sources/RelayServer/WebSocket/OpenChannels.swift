// The count of the node's open connections, for a shutdown that waits until the last has closed.

import NIOCore
import Synchronization

/// Every accepted connection the node still holds.
///
/// Connections are not each held by a task of their own (a suspended task and its stack cost
/// about 2 KB per idle socket, a fifth of what one costs in all), so the server's run returns when
/// the listener closes; the shutdown then waits here for the sockets the drain is closing.
final class OpenChannels: Sendable {
    private let count = Atomic<Int>(0)

    /// Counts `channel` until it closes.
    func track(_ channel: any Channel) {
        count.add(1, ordering: .relaxed)
        channel.closeFuture.whenComplete { _ in self.count.subtract(1, ordering: .releasing) }
    }

    /// Connections open now.
    var current: Int { count.load(ordering: .acquiring) }

    /// Returns once every tracked connection has closed, checking every 20 ms.
    func waitUntilAllClosed() async {
        while current > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

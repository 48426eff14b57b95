// A value split over several locks by key, so that callers on different keys never contend.

import Synchronization

/// `count` independent `Mutex`es, each around its own `Value`, chosen by a key's hash. Used for
/// per-frame lookups (sessions by id, bus subscriptions, seen nonces): two frames for different
/// keys take different locks, so no lock is shared by everything on the message path.
public final class LockShards<Value: Sendable>: Sendable {
    private final class Shard: Sendable {
        let lock: Mutex<Value>
        init(_ value: sending Value) { lock = Mutex(value) }
    }

    private let shards: [Shard]

    /// `count` shards, each starting as `make()`.
    public init(count: Int = 64, _ make: () -> Value) {
        precondition(count > 0, "a LockShards needs at least one shard")
        shards = (0..<count).map { _ in Shard(make()) }
    }

    /// Runs `body` on the shard `key` belongs to, under its lock.
    public func withLock<Key: Hashable, Result: Sendable>(for key: Key, _ body: (inout Value) throws -> Result) rethrows -> Result {
        var hasher = Hasher()
        hasher.combine(key)
        let index = Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))
        return try shards[index].lock.withLock { value in try body(&value) }
    }

    /// Runs `body` on every shard in turn, each under its own lock (not one snapshot of all).
    public func forEach(_ body: (inout Value) throws -> Void) rethrows {
        for shard in shards { try shard.lock.withLock { value in try body(&value) } }
    }
}

// A pthread mutex and condition variable around a value: what the relay's own threads sleep on.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `State` behind a pthread mutex, with a condition variable on the monotonic clock.
///
/// `Synchronization.Mutex` cannot be waited on, and the threads that own a blocking C client
/// (the Redis connection, the NATS bus) must sleep until work arrives or a deadline passes; this
/// is the smallest primitive that does both. ``WorkQueue`` is a FIFO built on it.
///
/// `@unchecked Sendable`: `state` is only touched with `mutex` held; the mutex and condition live
/// at fixed heap addresses for the object's lifetime.
public final class ConditionLock<State>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    // Only touched with `mutex` held.
    private var state: State

    /// A lock around `state`.
    public init(_ state: State) {
        self.state = state
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if !canImport(Darwin)
        // Deadlines are monotonic: a wall-clock step must not stretch or cut a backoff.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deinitialize(count: 1)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held.
    public func withLock<Result>(_ body: (inout State) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }

    /// Sleeps until `ready(state)` holds or the monotonic clock (``RelayCore/monotonicNanoseconds()``)
    /// passes `deadline` (nanoseconds; nil waits without limit), then runs `body` with the lock held.
    public func wait<Result>(
        until ready: (State) -> Bool, deadline: UInt64?, then body: (inout State) throws -> Result
    ) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !ready(state) {
            if let deadline {
                #if canImport(Darwin)
                // Darwin's condition variables have no monotonic clock: wait for what remains.
                let now = monotonicNanoseconds()
                guard deadline > now else { break }
                var time = timespec(tv_sec: Int((deadline - now) / 1_000_000_000), tv_nsec: Int((deadline - now) % 1_000_000_000))
                if pthread_cond_timedwait_relative_np(condition, mutex, &time) == ETIMEDOUT { break }
                #else
                var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
                if pthread_cond_timedwait(condition, mutex, &time) == ETIMEDOUT { break }
                #endif
            } else {
                pthread_cond_wait(condition, mutex)
            }
        }
        return try body(&state)
    }

    /// Wakes every waiter.
    public func broadcast() {
        pthread_cond_broadcast(condition)
    }
}

// The one clock the relay's logic reads: wall-clock milliseconds, and sleeps measured in them.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The time every record, expiry, rate window, sweep and approval timeout in the core is measured
/// by. The core takes one at construction: production passes ``SystemClock``; a test passes a
/// clock it advances itself, so retention, grace and timeouts are tested without waiting for them
/// and without depending on how fast the machine is.
public protocol RelayClock: Sendable {
    /// Milliseconds since the Unix epoch.
    func nowMillis() -> Int64
    /// Suspends until `millis` milliseconds of this clock have passed; throws `CancellationError`
    /// if the task is cancelled first.
    func sleep(millis: Int64) async throws
}

/// The real clock: `CLOCK_REALTIME` for timestamps, the task scheduler for sleeps.
public struct SystemClock: RelayClock {
    public init() {}

    public func nowMillis() -> Int64 { wallClockMillis() }

    public func sleep(millis: Int64) async throws {
        try await Task.sleep(for: .milliseconds(max(millis, 0)))
    }
}

/// Wall-clock milliseconds since the Unix epoch, read from the system. Code outside the core's
/// logic (signing timestamps, log lines) uses this directly; the core reads its ``RelayClock``.
@inline(__always)
public func wallClockMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

// The one monotonic clock: elapsed time for latencies, stalls, backoffs and timed waits.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds on `CLOCK_MONOTONIC`: immune to wall-clock steps, so a backoff, a write-stall
/// deadline or a measured latency is never stretched or cut by NTP. Every module measures elapsed
/// time with this (``ConditionLock`` deadlines are on the same clock).
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

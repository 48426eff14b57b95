// Reading the system's wall clock, in milliseconds since the Unix epoch.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock milliseconds since the Unix epoch, read from the system. Code outside the core's
/// logic (signing timestamps, log lines) uses this directly; the core reads its ``RelayClock``.
@inline(__always)
public func wallClockMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

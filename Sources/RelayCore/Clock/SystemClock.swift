// The production clock: the system's wall clock and the task scheduler's sleeps.

/// The real clock: `CLOCK_REALTIME` for timestamps, the task scheduler for sleeps.
public struct SystemClock: RelayClock {
    /// The system clock; it holds no state.
    public init() {}

    /// Wall-clock milliseconds since the Unix epoch (``wallClockMillis()``).
    public func nowMillis() -> Int64 { wallClockMillis() }

    /// Sleeps `millis` milliseconds (none when negative); throws `CancellationError` if the task
    /// is cancelled first.
    public func sleep(millis: Int64) async throws {
        try await Task.sleep(for: .milliseconds(max(millis, 0)))
    }
}

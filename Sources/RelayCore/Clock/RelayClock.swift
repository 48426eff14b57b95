// The one clock the relay's logic reads: wall-clock milliseconds, and sleeps measured in them.

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

// A fixed 60-second window counting hits against a per-minute limit.

/// A fixed 60 s window counter, created lazily on first use (PROTOCOL §4.10).
///
/// When `now ≥ end` the count resets to 1 and a new window begins; a hit is allowed iff the count
/// after incrementing is `≤ limit`, so exactly `limit` hits pass per window.
public struct RateWindow: Sendable, Equatable {
    /// The window length every relay bucket uses.
    public static let lengthMillis: Int64 = 60_000

    /// Hits counted in the current window.
    public private(set) var count: Int
    /// The instant the current window ends.
    public private(set) var endsAtMillis: Int64

    /// Starts a window at `now` with no hits yet.
    public init(startingAt now: Int64) {
        self.count = 0
        self.endsAtMillis = now + Self.lengthMillis
    }

    /// Counts one hit and says whether it is within `limit`.
    public mutating func consume(limit: Int, now: Int64) -> Bool {
        if now >= endsAtMillis {
            count = 1
            endsAtMillis = now + Self.lengthMillis
        } else {
            count += 1
        }
        return count <= limit
    }

    /// True once the window has ended and the bucket may be pruned.
    public func isExpired(now: Int64) -> Bool { now >= endsAtMillis }
}

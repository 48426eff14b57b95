// How much desktop history a session keeps (extension 11).

/// The bounds of one session's history: `HISTORY_MAX_FRAMES`, `HISTORY_MAX_BYTES`,
/// `HISTORY_TTL_MS`. `maxFrames` 0 turns recording off.
public struct HistoryLimits: Sendable, Equatable {
    public var maxFrames: Int
    public var maxBytes: Int
    public var ttlMillis: Int64

    public init(maxFrames: Int = 512, maxBytes: Int = 2 * 1024 * 1024, ttlMillis: Int64 = 600_000) {
        self.maxFrames = maxFrames
        self.maxBytes = maxBytes
        self.ttlMillis = ttlMillis
    }

    /// Whether the extension is on.
    public var isEnabled: Bool { maxFrames > 0 }
}

// A session record as the store holds it, with its write version.

/// A record as the store holds it: `record` nil means absent or deleted. `version` is the stored
/// write version (0 when the session was never written); deletion keeps it, so a late write of an
/// older copy cannot bring the session back.
public struct StoredSession: Sendable, Equatable {
    /// The stored record; nil when the session is absent or deleted.
    public var record: SessionRecord?
    /// The write version it was stored at; compare-and-save and the version guards compare it.
    public var version: UInt64
    /// A stored state: `record` (nil for absent) at `version`.
    public init(record: SessionRecord?, version: UInt64) {
        self.record = record
        self.version = version
    }
}

// One recorded desktop envelope (extension 11).

/// A desktop envelope as the history keeps it: its `seq`, the exact bytes the desktop sent, when
/// it was recorded, and the `seq` the recording node recorded just before it (nil when that node
/// had recorded none for the session, as after the desktop moved nodes): what shows a hole left
/// by a write that was lost.
public struct HistoryEntry: Sendable, Equatable {
    public var seq: UInt64
    public var previousSeq: UInt64?
    public var recordedAtMillis: Int64
    public var frame: [UInt8]

    public init(seq: UInt64, previousSeq: UInt64?, recordedAtMillis: Int64, frame: [UInt8]) {
        self.seq = seq
        self.previousSeq = previousSeq
        self.recordedAtMillis = recordedAtMillis
        self.frame = frame
    }

    /// Whether `self` follows `earlier` with nothing lost between them.
    func follows(_ earlier: HistoryEntry) -> Bool {
        if let previousSeq { return previousSeq == earlier.seq }
        return seq == earlier.seq &+ 1
    }
}

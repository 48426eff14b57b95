// One session's recent desktop envelopes, kept in this node's memory (extension 11, one node).

/// A session's recent desktop envelopes in memory: what a node without a shared store replays.
/// Bounded by ``HistoryLimits`` on every append; a `seq` lower than the last starts it over.
struct SessionHistory {
    private var entries: [HistoryEntry] = []
    /// Entries before it are dropped; compacted once it passes half the array.
    private var head = 0
    private(set) var bytes = 0
    /// The last `seq` recorded (the chain's link for the next entry).
    private(set) var lastSeq: UInt64?

    var count: Int { entries.count - head }

    /// The kept entries, oldest first.
    var all: [HistoryEntry] { Array(entries[head...]) }

    /// What one append changed: frames and bytes added (negative when dropped) for the gauges.
    struct Change {
        var frames = 0
        var bytes = 0
    }

    /// Records an envelope and drops what the limits no longer allow.
    mutating func record(seq: UInt64, frame: [UInt8], now: Int64, limits: HistoryLimits) -> Change {
        var change = Change()
        if let last = lastSeq, seq <= last {
            // The desktop restarted (or repeated itself): a new history.
            change.frames -= count
            change.bytes -= bytes
            entries.removeAll(keepingCapacity: true)
            head = 0
            bytes = 0
            if seq == last { lastSeq = nil }
        }
        entries.append(HistoryEntry(seq: seq, previousSeq: lastSeq, recordedAtMillis: now, frame: frame))
        lastSeq = seq
        bytes += frame.count
        change.frames += 1
        change.bytes += frame.count
        while count > 0,
            count > limits.maxFrames || bytes > limits.maxBytes || now - entries[head].recordedAtMillis > limits.ttlMillis
        {
            bytes -= entries[head].frame.count
            change.frames -= 1
            change.bytes -= entries[head].frame.count
            head += 1
        }
        if head > 64, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return change
    }

    /// Forgets everything; returns what was dropped, for the gauges.
    mutating func clear() -> Change {
        let change = Change(frames: -count, bytes: -bytes)
        entries = []
        head = 0
        bytes = 0
        lastSeq = nil
        return change
    }
}

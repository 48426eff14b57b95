// What a resume sends: the retained envelopes after the phone's last seq, and whether that is all.

/// The answer to `relay.resume` with `lastSeq` N, worked out from a history (oldest first): the
/// envelopes with `seq` > N the phone has not had, and what ``HistoryReplay`` judges completeness
/// by (whether they follow N, and the newest envelope kept).
struct ReplayPlan {
    var frames: [HistoryEntry]
    /// The frames follow `lastSeq` with nothing between (true when there are none).
    var startsRight: Bool
    /// The newest envelope of the kept chain, if any.
    var newest: UInt64?

    /// The history is first cut to its newest epoch (after the last fall of `seq`: the desktop
    /// restarted), to the limits (age, then frames and bytes counted from the newest back), and to
    /// the unbroken chain that ends at the newest envelope (a lost write leaves a hole). The plan
    /// sends the chain's envelopes after `lastSeq` and before `before`, the first envelope this
    /// socket already received live (nil: none yet).
    init(history: [HistoryEntry], lastSeq: UInt64, before: UInt64?, limits: HistoryLimits, now: Int64) {
        var kept = history
        if let fall = kept.indices.dropFirst().last(where: { kept[$0].seq <= kept[$0 - 1].seq }) {
            kept.removeFirst(fall)
        }
        kept.removeAll { now - $0.recordedAtMillis > limits.ttlMillis }
        var bytes = 0
        var start = kept.count
        while start > 0, kept.count - start < limits.maxFrames, bytes + kept[start - 1].frame.count <= limits.maxBytes {
            start -= 1
            bytes += kept[start].frame.count
        }
        var chainStart = kept.count - 1
        while chainStart > start, kept[chainStart].follows(kept[chainStart - 1]) { chainStart -= 1 }
        let chain = kept.isEmpty || start == kept.count ? [] : Array(kept[max(chainStart, start)...])

        frames = chain.filter { entry in entry.seq > lastSeq && (before.map { entry.seq < $0 } ?? true) }
        if let first = frames.first {
            startsRight = first.seq == lastSeq &+ 1 || first.previousSeq == lastSeq
        } else {
            startsRight = true
        }
        newest = chain.last?.seq
    }
}

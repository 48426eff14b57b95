// The phone's view of the desktop's envelope numbering: in order, a gap, or a restart.

/// Follows the `seq` of the desktop's envelopes to find the ones a phone missed.
struct DesktopSequence: Sendable {
    /// What one envelope means for the phone's state.
    enum Outcome: Equatable {
        /// The next one (or the first, or a snapshot, which is a new baseline).
        case inOrder
        /// Some were missed: `expected` was due, `received` came. A snapshot should be asked for,
        /// unless ``awaitingSnapshot`` says one already was.
        case gap(expected: UInt64, received: UInt64)
        /// A `seq` at or below the last: the desktop restarted its numbering (it sends a `hello`
        /// or `snapshot` then). Taken as the new baseline.
        case restarted
    }

    /// The `seq` of the last envelope processed.
    private(set) var last: UInt64?
    /// When a snapshot was last asked for, until it arrives.
    private var askedAt: ContinuousClock.Instant?

    /// How long an unanswered request holds back the next one (a request can be lost: the
    /// desktop dropped while it travelled).
    static let requestPatience: Duration = .seconds(10)

    /// Whether a snapshot was asked for recently and has not arrived: gaps meanwhile ask for no other.
    var awaitingSnapshot: Bool {
        get { askedAt.map { ContinuousClock.now - $0 < Self.requestPatience } ?? false }
        set { askedAt = newValue ? ContinuousClock.now : nil }
    }

    /// Continues from an envelope processed before (an app relaunched with the state it kept).
    mutating func resume(after seq: UInt64) {
        last = seq
    }

    mutating func observe(seq: UInt64, isSnapshot: Bool) -> Outcome {
        defer { last = seq }
        if isSnapshot {
            awaitingSnapshot = false
            return .inOrder
        }
        guard let last else { return .inOrder }
        if seq == last &+ 1 { return .inOrder }
        if seq > last { return .gap(expected: last + 1, received: seq) }
        return .restarted
    }
}

// A desktop's answer to a pairing request.

/// A desktop's `relay.pair_decision` (PROTOCOL §4.6).
struct PairDecision {
    var sessionID: String?
    var requestID: String?
    var approved: Bool
}

// The two facts the relay reads from a desktop frame it otherwise forwards byte-exact.

import RelayProtocol

/// What the relay needs to know about a desktop frame before forwarding it byte-exact: its
/// top-level `sessionID` (a foreign one is dropped) and whether it is a pair decision.
struct DesktopFrameScan {
    var sessionID: String?
    var pairDecision: PairDecision?

    init(_ text: [UInt8]) {
        // Only an object can carry either; anything else is forwarded without a look.
        guard let first = text.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }),
            first == UInt8(ascii: "{"),
            let fields = try? JSONValue.parseTopLevelMembers(text, keeping: Self.keys)
        else { return }
        if case .string(let sid)? = fields["sessionID"] { sessionID = sid }
        guard case .string("relay.pair_decision")? = fields["type"] else { return }
        var decision = PairDecision(approved: false)
        switch fields["sessionID"] {
        case nil, .null?: break
        case .string(let s)?: decision.sessionID = s
        default: return
        }
        switch fields["requestID"] {
        case nil, .null?: break
        case .string(let s)?: decision.requestID = s
        default: return
        }
        switch fields["approved"] {
        case nil, .null?: break
        case .bool(let b)?: decision.approved = b
        default: return
        }
        pairDecision = decision
    }

    /// The only members read; the rest of the frame (often a large snapshot) is validated, not built.
    private static let keys: Set<String> = ["type", "sessionID", "requestID", "approved"]
}

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
            let fields = try? JSONValue.parseTopLevelMembers(text, keeping: PairDecision.keys)
        else { return }
        if case .string(let sid)? = fields["sessionID"] { sessionID = sid }
        guard case .string("relay.pair_decision")? = fields["type"] else { return }
        pairDecision = PairDecision(fields: fields)
    }
}

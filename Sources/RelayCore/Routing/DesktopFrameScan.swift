// The two facts the relay reads from a desktop frame it otherwise forwards byte-exact.

import RelayProtocol

/// What the relay needs to know about a desktop frame before forwarding it byte-exact: its
/// top-level `sessionID` (a foreign one is dropped) and whether it is a pair decision.
struct DesktopFrameScan {
    var sessionID: String?
    var pairDecision: PairDecision?
    /// An envelope's integer `seq` (extension 11 records and resumes by it).
    var seq: UInt64?

    init(_ text: [UInt8]) {
        // Only an object can carry either; anything else is forwarded without a look.
        guard let first = text.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }),
            first == UInt8(ascii: "{"),
            let fields = try? JSONValue.parseTopLevelMembers(text, keeping: Self.keys)
        else { return }
        if case .string(let sid)? = fields["sessionID"] { sessionID = sid }
        if case .number(let number)? = fields["seq"], number.isInteger { seq = number.uint64 }
        guard case .string("relay.pair_decision")? = fields["type"] else { return }
        pairDecision = PairDecision(fields: fields)
    }

    /// The only members built; the rest of the frame (often a large snapshot) is validated, not built.
    private static let keys = PairDecision.keys.union(["seq"])
}

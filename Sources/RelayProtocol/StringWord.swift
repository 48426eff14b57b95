// Eight string bytes tested at once (SWAR): the scans of the JSON parser and writer.

/// Word-at-a-time tests on eight string bytes (SWAR), for the parser's and the writer's scans.
enum StringWord {
    static let ones: UInt64 = 0x0101_0101_0101_0101
    static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// True when one of the eight bytes is a `"`, a `\\` or a control character below 0x20: the
    /// bytes a JSON string cannot hold raw and the writer must escape. Exact (no false positives).
    @inline(__always)
    static func needsAttention(_ word: UInt64) -> Bool {
        let control = (word &- ones &* 0x20) & ~word & highBits
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let quoteZero = (quote &- ones) & ~quote & highBits
        let backslashZero = (backslash &- ones) & ~backslash & highBits
        return (control | quoteZero | backslashZero) != 0
    }
}

// A JSON number kept as its exact lexeme, so what the relay forwards is what it received.

/// A JSON number as the exact lexeme received, with its integer readings precomputed.
public struct JSONNumber: Sendable, Equatable, Hashable {
    /// The lexeme as received (e.g. `-1`, `2`, `1.5e3`); written back verbatim.
    public let text: String
    /// True when the lexeme has no fraction and no exponent.
    public private(set) var isInteger: Bool
    /// The value when the lexeme is a non-negative integer that fits `UInt64` (`-0` gives nil).
    public private(set) var uint64: UInt64?
    /// The value when the lexeme is an integer that fits `Int64`.
    public private(set) var int64: Int64?

    /// A number from an integer, written in plain decimal.
    public init(_ value: Int) {
        self.text = String(value)
        self.isInteger = true
        self.uint64 = value >= 0 ? UInt64(value) : nil
        self.int64 = Int64(value)
    }

    /// A number from an unsigned integer, written in plain decimal.
    public init(_ value: UInt64) {
        self.text = String(value)
        self.isInteger = true
        self.uint64 = value
        self.int64 = Int64(exactly: value)
    }

    /// A number from a lexeme; nil unless `lexeme` is exactly one RFC 8259 number
    /// (no surrounding whitespace).
    public init?(lexeme: String) {
        guard let first = lexeme.utf8.first, first == UInt8(ascii: "-") || (first >= 0x30 && first <= 0x39),
            case .number(let number)? = try? JSONValue.parse(lexeme),
            number.text.utf8.count == lexeme.utf8.count
        else { return nil }
        self = number
    }

    init(text: String, isInteger: Bool, uint64: UInt64?, int64: Int64?) {
        self.text = text
        self.isInteger = isInteger
        self.uint64 = uint64
        self.int64 = int64
    }

    /// Numbers are equal when their lexemes are.
    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool { lhs.text == rhs.text }

    /// Hashes the lexeme.
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }

    /// True when the reference relay (serde_json) reads this lexeme as an integer rather than a
    /// float: an integer lexeme that fits `UInt64`, or a negative one that fits `Int64` (`-0` is a
    /// float there).
    var isWireInteger: Bool {
        guard isInteger else { return false }
        if uint64 != nil { return true }
        if let int64, int64 < 0 { return true }
        return false
    }
}

extension JSONNumber: ExpressibleByIntegerLiteral {
    /// A number from an integer literal.
    public init(integerLiteral value: Int) { self.init(value) }
}

extension JSONNumber: CustomStringConvertible {
    /// The lexeme.
    public var description: String { text }
}

// A JSON document as a value: what the relay parses from phones and writes to desktops.

/// A parsed JSON value. Numbers keep their exact lexeme; objects keep the last of duplicate keys.
///
/// Equality compares strings and keys as Swift `String`s (canonical equivalence) and numbers by
/// lexeme, so `1.0` and `1` are different values.
public enum JSONValue: Sendable, Equatable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number, kept as its lexeme.
    case number(JSONNumber)
    /// A string, unescaped.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object; written with its keys sorted byte-wise.
    case object([String: JSONValue])
}

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

/// Why a byte sequence is not one JSON value, with the position of the first problem.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Human-readable reason and position, e.g. `expected value at line 1 column 5`.
    public let description: String
    /// Byte offset of the problem in the input.
    public let offset: Int

    init(description: String, offset: Int) {
        self.description = description
        self.offset = offset
    }
}

extension JSONValue {
    /// Containers may nest at most this deep; one more level is a parse error. This is
    /// serde_json's limit (its recursion budget of 128 rejects the 128th nested container), so a
    /// frame the reference relay rejects as invalid JSON is rejected here too.
    public static let maxNestingDepth = 127

    /// The member `key` of an object; nil for a missing key or a non-object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    /// The string, if this is a string.
    public var stringValue: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    /// The boolean, if this is a boolean.
    public var boolValue: Bool? {
        guard case .bool(let value) = self else { return nil }
        return value
    }

    /// The number, if this is a number.
    public var numberValue: JSONNumber? {
        guard case .number(let value) = self else { return nil }
        return value
    }

    /// The members, if this is an object.
    public var objectValue: [String: JSONValue]? {
        guard case .object(let value) = self else { return nil }
        return value
    }

    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? {
        guard case .array(let value) = self else { return nil }
        return value
    }

    /// True for `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

extension JSONValue: CustomStringConvertible {
    /// The compact serialization.
    public var description: String { serialized }
}

extension JSONValue: ExpressibleByStringLiteral {
    /// A string value.
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    /// An integer number value.
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    /// A boolean value.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    /// An array value.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// An object value; a repeated key keeps the last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var members: [String: JSONValue] = [:]
        members.reserveCapacity(elements.count)
        for (key, value) in elements { members[key] = value }
        self = .object(members)
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

// Conveniences on JSONValue for clients, tools and tests: typed number reads, element access, builders.

extension JSONValue {
    /// The element at `index` of an array; nil for an index out of range or a non-array.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// The `type` member of an object, when it is a string: the discriminator of every relay frame.
    public var type: String? { self["type"]?.stringValue }

    /// The number as `Int64` when its value is an exact integer in range (`7`, but also `7.0` or
    /// `7e0`); nil for a fraction, an out-of-range value or a non-number.
    public var int64Value: Int64? {
        guard case .number(let number) = self else { return nil }
        if let value = number.int64 { return value }
        return Double(number.text).flatMap { Int64(exactly: $0) }
    }

    /// The number as `Int` (see ``int64Value``).
    public var intValue: Int? { int64Value.flatMap { Int(exactly: $0) } }

    /// The number as `UInt64` when its value is an exact non-negative integer in range (see
    /// ``int64Value``).
    public var uint64Value: UInt64? {
        guard case .number(let number) = self else { return nil }
        if let value = number.uint64 { return value }
        return Double(number.text).flatMap { UInt64(exactly: $0) }
    }

    /// The number as the nearest `Double`, if this is a number.
    public var doubleValue: Double? {
        guard case .number(let number) = self else { return nil }
        return Double(number.text)
    }

    /// An integer number, written in plain decimal.
    public static func int(_ value: some BinaryInteger) -> JSONValue {
        if let signed = Int(exactly: value) { return .number(JSONNumber(signed)) }
        if let unsigned = UInt64(exactly: value) { return .number(JSONNumber(unsigned)) }
        let text = String(value)
        return .number(JSONNumber(text: text, isInteger: true, uint64: nil, int64: nil))
    }

    /// A number from a `Double`, always with a fraction or an exponent (`3.0`, `0.25`, `1e+20`),
    /// so it reads back as a double; a non-finite value (which JSON cannot hold) is `null`.
    public static func double(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .null }
        let text: String
        if let exact = Int64(exactly: value), abs(value) < 1e15 {
            text = "\(exact).0"
        } else {
            text = "\(value)"
        }
        return .number(JSONNumber(text: text, isInteger: false, uint64: nil, int64: nil))
    }
}

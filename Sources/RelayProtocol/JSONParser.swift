// Strict RFC 8259 parsing straight from UTF-8 bytes, with serde_json's limits.

extension JSONValue {
    /// Parses exactly one JSON value from UTF-8 bytes.
    ///
    /// Strict RFC 8259: whitespace may surround the value, anything else after it is an error.
    /// Strings must be valid UTF-8 and `\u` escapes must pair surrogates. Duplicate object keys keep
    /// the last value. Containers nest at most ``maxNestingDepth`` deep. Numbers keep their lexeme,
    /// but one whose magnitude overflows a `Double` is rejected, as serde_json does.
    @inlinable
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(JSONParseError) -> JSONValue {
        if let result = bytes.withContiguousStorageIfAvailable({ JSONValue._parse($0) }) {
            return try result.get()
        }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { JSONValue._parse($0) }.get()
    }

    /// Parses exactly one JSON value from a string (see the byte overload).
    public static func parse(_ string: String) throws(JSONParseError) -> JSONValue {
        try parse(string.utf8)
    }

    /// Validates one JSON document as strictly as ``parse(_:)-(Bytes)`` but builds only the
    /// top-level members named in `keys`; every other value is checked and skipped without
    /// allocating. Returns nil for a valid document that is not an object.
    ///
    /// For frames the relay forwards untouched but must look into (a desktop frame's `sessionID`
    /// and pair decision), where building the whole tree would be wasted work.
    public static func parseTopLevelMembers(
        _ bytes: [UInt8], keeping keys: Set<String>
    ) throws(JSONParseError) -> [String: JSONValue]? {
        try bytes.withUnsafeBufferPointer { buffer -> Result<[String: JSONValue]?, JSONParseError> in
            var parser = JSONParser(buffer)
            do throws(JSONParseError) {
                return .success(try parser.scanTopLevel(keeping: keys))
            } catch {
                return .failure(error)
            }
        }.get()
    }

    @usableFromInline
    static func _parse(_ buffer: UnsafeBufferPointer<UInt8>) -> Result<JSONValue, JSONParseError> {
        var parser = JSONParser(buffer)
        do throws(JSONParseError) {
            return .success(try parser.parseDocument())
        } catch {
            return .failure(error)
        }
    }
}

private enum ASCII {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
    static let lowerE = UInt8(ascii: "e")
    static let upperE = UInt8(ascii: "E")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
}

/// A recursive-descent parser over a borrowed byte buffer. Only lives inside `_parse`.
struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    /// Reused for strings that contain escapes.
    private var scratch: [UInt8] = []
    /// Members of the objects being parsed, innermost last.
    private var pendingMembers: [ObjectMember] = []

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        let value = try parseValue()
        skipWhitespace()
        if index < bytes.count { throw error("trailing characters", at: index) }
        return value
    }

    /// The top-level object's members named in `keys`, or nil for a valid non-object document.
    mutating func scanTopLevel(keeping keys: Set<String>) throws(JSONParseError) -> [String: JSONValue]? {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == ASCII.openBrace else {
            try skipValue()
            skipWhitespace()
            if index < bytes.count { throw error("trailing characters", at: index) }
            return nil
        }
        var kept: [String: JSONValue] = [:]
        try walkObject { key, parser throws(JSONParseError) in
            guard keys.contains(key) else { return try parser.skipValue() }
            // Room for every key asked for at the first one kept: one allocation, not one per growth.
            if kept.isEmpty { kept.reserveCapacity(keys.count) }
            kept[key] = try parser.parseValue()
        }
        skipWhitespace()
        if index < bytes.count { throw error("trailing characters", at: index) }
        return kept
    }

    // MARK: Skipping (validation without building values)

    private mutating func skipValue() throws(JSONParseError) {
        skipWhitespace()
        guard index < bytes.count else { throw error("EOF while parsing a value", at: index) }
        switch bytes[index] {
        case ASCII.openBrace: try walkObject { _, parser throws(JSONParseError) in try parser.skipValue() }
        case ASCII.openBracket: try walkArray { parser throws(JSONParseError) in try parser.skipValue() }
        case ASCII.quote: try skipString()
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        // Number lexemes are short, so building one stays on the stack.
        case ASCII.minus, ASCII.zero...ASCII.nine: _ = try parseNumber()
        default: throw error("expected value", at: index)
        }
    }

    /// Walks an object whose `{` is at `index`, handing each member's key to `member`, which must
    /// consume the value. Parsing and skipping share it.
    private mutating func walkObject(
        _ member: (String, inout JSONParser) throws(JSONParseError) -> Void
    ) throws(JSONParseError) {
        try enterContainer()
        index += 1  // {
        skipWhitespace()
        if index < bytes.count, bytes[index] == ASCII.closeBrace {
            index += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw error("EOF while parsing an object", at: index) }
            guard bytes[index] == ASCII.quote else {
                if bytes[index] == ASCII.closeBrace { throw error("trailing comma", at: index) }
                throw error("key must be a string", at: index)
            }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count else { throw error("EOF while parsing an object", at: index) }
            guard bytes[index] == ASCII.colon else { throw error("expected `:`", at: index) }
            index += 1
            try member(key, &self)
            skipWhitespace()
            guard index < bytes.count else { throw error("EOF while parsing an object", at: index) }
            switch bytes[index] {
            case ASCII.comma:
                index += 1
            case ASCII.closeBrace:
                index += 1
                depth -= 1
                return
            default:
                throw error("expected `,` or `}`", at: index)
            }
        }
    }

    private mutating func walkArray(_ element: (inout JSONParser) throws(JSONParseError) -> Void) throws(JSONParseError) {
        try enterContainer()
        index += 1  // [
        skipWhitespace()
        if index < bytes.count, bytes[index] == ASCII.closeBracket {
            index += 1
            depth -= 1
            return
        }
        while true {
            try element(&self)
            skipWhitespace()
            guard index < bytes.count else { throw error("EOF while parsing a list", at: index) }
            switch bytes[index] {
            case ASCII.comma:
                index += 1
                skipWhitespace()
                if index < bytes.count, bytes[index] == ASCII.closeBracket {
                    throw error("trailing comma", at: index)
                }
            case ASCII.closeBracket:
                index += 1
                depth -= 1
                return
            default:
                throw error("expected `,` or `]`", at: index)
            }
        }
    }

    /// Checks a string (escapes, control characters, UTF-8) without building it.
    private mutating func skipString() throws(JSONParseError) {
        let openQuote = index
        index += 1
        var runStart = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == ASCII.quote || byte == ASCII.backslash {
                // Escapes yield whole UTF-8 sequences, so each raw run must be valid on its own.
                guard UTF8Validation.isValid(UnsafeBufferPointer(rebasing: bytes[runStart..<index])) else {
                    throw error("invalid UTF-8 in string", at: openQuote)
                }
                index += 1
                if byte == ASCII.quote { return }
                scratch.removeAll(keepingCapacity: true)
                try parseEscape()
                runStart = index
                continue
            }
            if byte < 0x20 {
                throw error("control character (\\u0000-\\u001F) found while parsing a string", at: index)
            }
            index += 1
        }
        throw error("EOF while parsing a string", at: index)
    }

    // MARK: Values

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        guard index < bytes.count else { throw error("EOF while parsing a value", at: index) }
        switch bytes[index] {
        case ASCII.openBrace: return try parseObject()
        case ASCII.openBracket: return try parseArray()
        case ASCII.quote: return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case ASCII.minus, ASCII.zero...ASCII.nine:
            return .number(try parseNumber())
        default:
            throw error("expected value", at: index)
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        let start = literal.utf8Start
        for offset in 0..<count {
            guard index < bytes.count else { throw error("EOF while parsing a value", at: index) }
            guard bytes[index] == start[offset] else { throw error("expected ident", at: index) }
            index += 1
        }
    }

    private mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        if depth > JSONValue.maxNestingDepth { throw error("recursion limit exceeded", at: index) }
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        var elements: [JSONValue] = []
        try walkArray { parser throws(JSONParseError) in elements.append(try parser.parseValue()) }
        return .array(elements)
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        let objectStart = index
        // Members are collected first so the dictionary is allocated once, at its final size.
        if pendingMembers.capacity == 0 { pendingMembers.reserveCapacity(16) }
        let base = pendingMembers.count
        try walkObject { key, parser throws(JSONParseError) in
            parser.pendingMembers.append(ObjectMember(key: key, value: try parser.parseValue()))
        }
        return .object(try takeMembers(from: base, objectStart: objectStart))
    }

    /// Moves the members collected since `base` into a dictionary; a repeated key keeps the last value.
    private mutating func takeMembers(from base: Int, objectStart: Int) throws(JSONParseError) -> [String: JSONValue] {
        var members = [String: JSONValue](minimumCapacity: pendingMembers.count - base)
        for position in base..<pendingMembers.count {
            let key = pendingMembers[position].key
            if members.updateValue(pendingMembers[position].value, forKey: key) != nil,
                let existing = members.index(forKey: key), !utf8Equal(members[existing].key, key)
            {
                // Swift keys are equal under canonical equivalence; JSON keys only when their
                // bytes are. Refuse rather than silently merge two distinct keys.
                throw error("object keys are canonically equivalent but not identical", at: objectStart)
            }
        }
        pendingMembers.removeSubrange(base...)
        return members
    }

    // MARK: Numbers

    private mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = index
        let negative = bytes[index] == ASCII.minus
        if negative { index += 1 }
        guard index < bytes.count else { throw error("EOF while parsing a value", at: index) }

        var magnitude: UInt64 = 0
        var overflow = false
        var integerDigits = 0
        let first = bytes[index]
        if first == ASCII.zero {
            index += 1
            integerDigits = 1
            if index < bytes.count, isDigit(bytes[index]) { throw error("invalid number", at: index) }
        } else if isDigit(first) {
            while index < bytes.count, isDigit(bytes[index]) {
                let digit = UInt64(bytes[index] &- ASCII.zero)
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(digit)
                magnitude = sum
                overflow = overflow || o1 || o2
                integerDigits += 1
                index += 1
            }
        } else {
            throw error("invalid number", at: index)
        }

        var isInteger = true
        var hasExponent = false
        if index < bytes.count, bytes[index] == ASCII.dot {
            isInteger = false
            index += 1
            try requireDigits()
        }
        if index < bytes.count, bytes[index] == ASCII.lowerE || bytes[index] == ASCII.upperE {
            isInteger = false
            hasExponent = true
            index += 1
            if index < bytes.count, bytes[index] == ASCII.plus || bytes[index] == ASCII.minus { index += 1 }
            try requireDigits()
        }

        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if hasExponent || integerDigits > 300 {
            // serde_json (the reference) refuses numbers whose magnitude overflows f64.
            guard let double = Double(text), double.isFinite else {
                throw error("number out of range", at: start)
            }
        }
        guard isInteger, !overflow else {
            return JSONNumber(text: text, isInteger: isInteger, uint64: nil, int64: nil)
        }
        if negative {
            let int64: Int64?
            if magnitude <= UInt64(Int64.max) {
                int64 = -Int64(magnitude)
            } else if magnitude == Int64.min.magnitude {
                int64 = Int64.min
            } else {
                int64 = nil
            }
            return JSONNumber(text: text, isInteger: true, uint64: nil, int64: int64)
        }
        return JSONNumber(text: text, isInteger: true, uint64: magnitude, int64: Int64(exactly: magnitude))
    }

    private mutating func requireDigits() throws(JSONParseError) {
        guard index < bytes.count else { throw error("EOF while parsing a value", at: index) }
        guard isDigit(bytes[index]) else { throw error("invalid number", at: index) }
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
    }

    @inline(__always)
    private func isDigit(_ byte: UInt8) -> Bool { byte &- ASCII.zero < 10 }

    // MARK: Strings

    /// Parses a string whose opening quote is at `index`.
    private mutating func parseString() throws(JSONParseError) -> String {
        let openQuote = index
        index += 1
        let start = index
        var highBits: UInt64 = 0
        while index < bytes.count {
            // Skip eight ordinary bytes at a time.
            while index + 8 <= bytes.count {
                let word = UnsafeRawPointer(bytes.baseAddress! + index).loadUnaligned(as: UInt64.self)
                if StringWord.needsAttention(word) { break }
                highBits |= word
                index += 8
            }
            guard index < bytes.count else { break }
            let byte = bytes[index]
            if byte == ASCII.quote {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                if highBits & StringWord.highBits == 0 { return String(decoding: raw, as: UTF8.self) }
                guard let string = String(validating: raw, as: UTF8.self) else {
                    throw error("invalid UTF-8 in string", at: openQuote)
                }
                return string
            }
            if byte == ASCII.backslash { return try parseEscapedString(openQuote: openQuote, start: start) }
            if byte < 0x20 {
                throw error("control character (\\u0000-\\u001F) found while parsing a string", at: index)
            }
            highBits |= UInt64(byte) << 56
            index += 1
        }
        throw error("EOF while parsing a string", at: index)
    }

    /// Continues a string at its first backslash (`index`), unescaping into `scratch`.
    private mutating func parseEscapedString(openQuote: Int, start: Int) throws(JSONParseError) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case ASCII.quote:
                index += 1
                // Escapes only produce complete UTF-8 sequences that start with an ASCII or a lead
                // byte, so validating the whole buffer validates every raw run in it.
                guard let string = String(validating: scratch, as: UTF8.self) else {
                    throw error("invalid UTF-8 in string", at: openQuote)
                }
                return string
            case ASCII.backslash:
                index += 1
                try parseEscape()
            case 0..<0x20:
                throw error("control character (\\u0000-\\u001F) found while parsing a string", at: index)
            default:
                scratch.append(byte)
                index += 1
            }
        }
        throw error("EOF while parsing a string", at: index)
    }

    /// Parses the escape after a backslash at `index - 1`, appending its UTF-8 to `scratch`.
    private mutating func parseEscape() throws(JSONParseError) {
        guard index < bytes.count else { throw error("EOF while parsing a string", at: index) }
        let escapeOffset = index
        let byte = bytes[index]
        index += 1
        switch byte {
        case ASCII.quote: scratch.append(ASCII.quote)
        case ASCII.backslash: scratch.append(ASCII.backslash)
        case ASCII.slash: scratch.append(ASCII.slash)
        case UInt8(ascii: "b"): scratch.append(0x08)
        case UInt8(ascii: "f"): scratch.append(0x0C)
        case UInt8(ascii: "n"): scratch.append(ASCII.newline)
        case UInt8(ascii: "r"): scratch.append(ASCII.carriageReturn)
        case UInt8(ascii: "t"): scratch.append(ASCII.tab)
        case UInt8(ascii: "u"):
            let unit = try parseHex4()
            var scalarValue = UInt32(unit)
            if unit >= 0xD800 && unit < 0xDC00 {
                guard index + 1 < bytes.count, bytes[index] == ASCII.backslash,
                    bytes[index + 1] == UInt8(ascii: "u")
                else { throw error("lone leading surrogate in hex escape", at: escapeOffset) }
                index += 2
                let low = try parseHex4()
                guard low >= 0xDC00 && low < 0xE000 else {
                    throw error("lone leading surrogate in hex escape", at: escapeOffset)
                }
                scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
            } else if unit >= 0xDC00 && unit < 0xE000 {
                throw error("lone trailing surrogate in hex escape", at: escapeOffset)
            }
            appendUTF8(scalarValue)
        default:
            throw error("invalid escape", at: escapeOffset)
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt16 {
        guard index + 4 <= bytes.count else { throw error("EOF while parsing a string", at: bytes.count) }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case ASCII.zero...ASCII.nine: digit = byte - ASCII.zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid escape", at: index)
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }

    private mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | (scalar >> 6)))
            scratch.append(UInt8(0x80 | (scalar & 0x3F)))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | (scalar >> 12)))
            scratch.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (scalar & 0x3F)))
        default:
            scratch.append(UInt8(0xF0 | (scalar >> 18)))
            scratch.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }

    // MARK: Whitespace and errors

    @inline(__always)
    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case ASCII.space, ASCII.newline, ASCII.carriageReturn, ASCII.tab: index += 1
            default: return
            }
        }
    }

    /// An error at byte `offset`, described with its 1-based line and column (column in bytes).
    private func error(_ message: String, at offset: Int) -> JSONParseError {
        var line = 1
        var lineStart = 0
        let end = min(offset, bytes.count)
        for position in 0..<end where bytes[position] == ASCII.newline {
            line += 1
            lineStart = position + 1
        }
        return JSONParseError(
            description: "\(message) at line \(line) column \(offset - lineStart + 1)",
            offset: offset
        )
    }
}

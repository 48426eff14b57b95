// JSONValue.parse: what strict RFC 8259 accepts and refuses, and what it keeps.

import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(2))) struct JSONParserTests {
    @Test func parsesEveryKindOfValue() throws {
        let value = try JSONValue.parse(#" {"a":[1,-2.5,true,false,null,"x"],"b":{}} "#)
        #expect(value == ["a": [1, .number(JSONNumber(lexeme: "-2.5")!), true, false, .null, "x"], "b": [:]])
    }

    @Test func parsesTopLevelScalarsWithSurroundingWhitespace() throws {
        #expect(try JSONValue.parse(" \t\r\n42\n") == 42)
        #expect(try JSONValue.parse("\"hi\"") == "hi")
        #expect(try JSONValue.parse("null") == .null)
        #expect(try JSONValue.parse("[]") == [])
    }

    @Test func parsesFromByteCollections() throws {
        let bytes = Array(#"{"k":"v"}"#.utf8)
        #expect(try JSONValue.parse(bytes) == ["k": "v"])
        #expect(try JSONValue.parse(bytes[...]) == ["k": "v"])
        // A collection without contiguous storage takes the copying path.
        #expect(try JSONValue.parse(bytes.lazy.map { $0 }) == ["k": "v"])
    }

    @Test(arguments: [
        "", " ", "[1,]", #"{"a":1,}"#, "[1 2]", #"{"a" 1}"#, #"{a:1}"#, "01", "-01", "-", "1.", ".5", "1e", "1e+",
        "+1", "0x10", "NaN", "Infinity", "tru", "nul", "True", "[", "{", #"{"a":"#, #""abc"#, "[1]]", "1 2",
        "{}x", "'a'", #""\x""#, #""\u12""#, #""\u12G4""#, "\"tab\there\"", "\"nl\nhere\"", "\u{FEFF}{}", "[1,,2]",
        "1e400", "-1e400",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func trailingCommasAreRejected() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse("[1,2,]") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#"{"a":1,"b":2,}"#) }
    }

    @Test func leadingZerosAreRejectedButZeroItselfIsFine() throws {
        #expect(throws: JSONParseError.self) { try JSONValue.parse("01") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("[00]") }
        #expect(try JSONValue.parse("0") == 0)
        #expect(try JSONValue.parse("[0.5,-0,0e1]").arrayValue?.count == 3)
    }

    @Test func errorsNameTheProblemAndItsPosition() {
        #expect(parseError("[1,]") == "trailing comma at line 1 column 4")
        #expect(parseError("{\n  \"a\": ?\n}") == "expected value at line 2 column 8")
        #expect(parseError("[1] x") == "trailing characters at line 1 column 5")
        #expect(parseError("01") == "invalid number at line 1 column 2")
        #expect(parseError("") == "EOF while parsing a value at line 1 column 1")
    }

    @Test func loneSurrogatesAreRejected() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#""\uD83D""#) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#""\uD83Dx""#) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#""\uD83D\u0041""#) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#""\uDE00""#) }
        #expect(parseError(#""\uDE00""#)?.hasPrefix("lone trailing surrogate") == true)
    }

    @Test func escapesAreDecodedIncludingSurrogatePairs() throws {
        let value = try JSONValue.parse(#""\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\uD83D\uDE00""#)
        #expect(value == .string("\"\\/\u{8}\u{C}\n\r\tAé€😀"))
    }

    @Test func rawUTF8IsKeptAndInvalidUTF8IsRejected() throws {
        #expect(try JSONValue.parse(Array("\"é中😀\"".utf8)) == "é中😀")
        let invalidSequences: [[UInt8]] = [
            [0x22, 0xC3, 0x28, 0x22],  // bad continuation
            [0x22, 0xE2, 0x82, 0x22],  // truncated
            [0x22, 0xED, 0xA0, 0x80, 0x22],  // UTF-8 encoded surrogate
            [0x22, 0xC0, 0xAF, 0x22],  // overlong '/'
            [0x22, 0x5C, 0x6E, 0xFF, 0x22],  // after an escape
        ]
        for bytes in invalidSequences {
            #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes) }
        }
    }

    @Test func nonASCIIAndInvalidBytesAreSeenAtEveryOffset() throws {
        // Covers both the eight-bytes-at-a-time scan and the byte-by-byte tail.
        for offset in 0..<17 {
            var valid = Array(repeating: UInt8(ascii: "a"), count: 17)
            valid.replaceSubrange(offset..<offset + 1, with: Array("é".utf8))
            let text = String(decoding: valid, as: UTF8.self)
            #expect(try JSONValue.parse([0x22] + valid + [0x22]) == .string(text))
            var invalid = Array(repeating: UInt8(ascii: "a"), count: 17)
            invalid[offset] = 0xFF
            #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22] + invalid + [0x22]) }
            var control = Array(repeating: UInt8(ascii: "a"), count: 17)
            control[offset] = 0x1F
            #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22] + control + [0x22]) }
        }
    }

    @Test func controlCharactersInsideStringsAreRejected() {
        for byte in UInt8(0)..<0x20 {
            #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22, byte, 0x22]) }
        }
        #expect((try? JSONValue.parse([0x22, 0x7F, 0x22])) == .string("\u{7F}"))
    }

    @Test func nestingIsLimitedLikeTheReference() throws {
        let deepest = JSONValue.maxNestingDepth
        let accepted = String(repeating: "[", count: deepest) + String(repeating: "]", count: deepest)
        _ = try JSONValue.parse(accepted)
        let tooDeep = String(repeating: "[", count: deepest + 1) + String(repeating: "]", count: deepest + 1)
        #expect(parseError(tooDeep)?.hasPrefix("recursion limit exceeded") == true)
        let tooDeepObjects =
            String(repeating: #"{"a":"#, count: deepest + 1) + "1" + String(repeating: "}", count: deepest + 1)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(tooDeepObjects) }
        // Hostile depth far past the limit fails cleanly instead of overflowing the stack.
        #expect(throws: JSONParseError.self) { try JSONValue.parse(String(repeating: "[", count: 100_000)) }
    }

    @Test func duplicateKeysKeepTheLastValue() throws {
        #expect(try JSONValue.parse(#"{"a":1,"a":2}"#) == ["a": 2])
    }

    @Test func canonicallyEquivalentButDifferentKeysAreRefused() {
        // "K" and U+212A KELVIN SIGN are one Swift dictionary key but two JSON keys.
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{\"K\":1,\"\u{212A}\":2}") }
    }

    @Test func bigNumbersAreKeptVerbatim() throws {
        let text = #"[18446744073709551616,-9223372036854775809,123456789012345678901234567890.5,1E+2,-0.0]"#
        let value = try JSONValue.parse(text)
        #expect(value.serialized == text)
        let numbers = value.arrayValue!.compactMap(\.numberValue)
        #expect(numbers[0].isInteger && numbers[0].uint64 == nil && numbers[0].int64 == nil)
        #expect(numbers[1].isInteger && numbers[1].int64 == nil)
        #expect(!numbers[2].isInteger)
    }

    @Test func integerReadingsCoverBothSixtyFourBitRanges() throws {
        func number(_ text: String) throws -> JSONNumber { try #require(JSONNumber(lexeme: text)) }
        #expect(try number("18446744073709551615").uint64 == UInt64.max)
        #expect(try number("18446744073709551615").int64 == nil)
        #expect(try number("9223372036854775807").int64 == Int64.max)
        #expect(try number("-9223372036854775808").int64 == Int64.min)
        #expect(try number("-9223372036854775808").uint64 == nil)
        #expect(try number("-0").uint64 == nil)
        #expect(try number("2.0").isInteger == false)
        #expect(try number("2.0").uint64 == nil)
        #expect(try number("2e0").int64 == nil)
        #expect(try number("7").isInteger && number("7").uint64 == 7 && number("7").int64 == 7)
    }

    @Test func numberLexemesMustBeExactlyOneNumber() {
        #expect(JSONNumber(lexeme: "1.5e3")?.text == "1.5e3")
        #expect(JSONNumber(lexeme: " 1") == nil)
        #expect(JSONNumber(lexeme: "1 ") == nil)
        #expect(JSONNumber(lexeme: "\"1\"") == nil)
        #expect(JSONNumber(lexeme: "01") == nil)
        #expect(JSONNumber(lexeme: "") == nil)
    }

    @Test func integerInitializersWritePlainDecimal() {
        #expect(JSONNumber(-17).text == "-17")
        #expect(JSONNumber(-17).int64 == -17 && JSONNumber(-17).uint64 == nil)
        #expect(JSONNumber(UInt64.max).text == "18446744073709551615")
        #expect(JSONNumber(UInt64.max).int64 == nil)
    }

    @Test func accessorsReadOnlyTheirOwnKind() throws {
        let value = try JSONValue.parse(#"{"s":"x","b":true,"o":{},"a":[],"n":null}"#)
        #expect(value["s"]?.stringValue == "x")
        #expect(value["b"]?.boolValue == true)
        #expect(value["o"]?.objectValue == [:])
        #expect(value["a"]?.arrayValue == [])
        #expect(value["n"]?.isNull == true)
        #expect(value["missing"] == nil)
        #expect(value["s"]?.boolValue == nil)
        #expect(JSONValue.string("x")["s"] == nil)
    }

    private func parseError(_ text: String) -> String? {
        do {
            _ = try JSONValue.parse(text)
            return nil
        } catch {
            return error.description
        }
    }
}

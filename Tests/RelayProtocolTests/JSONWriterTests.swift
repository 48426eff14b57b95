// JSONValue.write and appendJSONString: serde_json's compact form, sorted keys and escapes.

import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(2))) struct JSONWriterTests {
    @Test func writesCompactlyWithKeysSortedAtEveryLevel() {
        let value: JSONValue = ["b": 1, "a": ["d": true, "c": [.null, "x"]], "C": false]
        #expect(value.serialized == #"{"C":false,"a":{"c":[null,"x"],"d":true},"b":1}"#)
    }

    @Test func keysSortByUTF8BytesNotBySwiftStringOrder() {
        // Swift orders U+212A KELVIN SIGN as its canonical "K", before "Z"; its UTF-8 (E2 84 AA)
        // sorts after every ASCII byte and after U+00E9 (C3 A9).
        #expect("\u{212A}" < "Z")
        let value: JSONValue = ["\u{212A}": 1, "é": 2, "z": 3, "Z": 4, "e": 6, "": 7, "😀": 8]
        #expect(value.serialized == "{\"\":7,\"Z\":4,\"e\":6,\"z\":3,\"é\":2,\"\u{212A}\":1,\"😀\":8}")
    }

    @Test func stringsAreEscapedLikeSerdeJSON() {
        var buffer: [UInt8] = []
        appendJSONString("q\" b\\ /\u{8}\u{C}\n\r\t\u{0}\u{1}\u{1F}\u{7F}é😀\u{2028}", to: &buffer)
        #expect(
            String(decoding: buffer, as: UTF8.self)
                == "\"q\\\" b\\\\ /\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\u{7F}é😀\u{2028}\"")
    }

    @Test func everyControlCharacterUsesItsShortOrLowerCaseHexEscape() {
        let short: [UInt8: String] = [0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"]
        for byte in UInt8(0)..<0x20 {
            var buffer: [UInt8] = []
            appendJSONString(String(UnicodeScalar(byte)), to: &buffer)
            let hex = String(byte, radix: 16)
            let expected = short[byte] ?? "\\u00" + (hex.count == 1 ? "0" + hex : hex)
            #expect(String(decoding: buffer, as: UTF8.self) == "\"\(expected)\"")
        }
    }

    @Test func substringsAppendOnlyTheirSlice() {
        let text = "prefix-\"mid\"-suffix"
        let slice = text.dropFirst(7).prefix(5)
        var buffer: [UInt8] = Array("x=".utf8)
        appendJSONString(slice, to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == #"x="\"mid\"""#)
    }

    @Test func appendingKeepsWhatTheBufferHeld() {
        var buffer: [UInt8] = Array("[".utf8)
        JSONValue.string("a").write(into: &buffer)
        buffer.append(UInt8(ascii: ","))
        JSONValue.number(JSONNumber(3)).write(into: &buffer)
        buffer.append(UInt8(ascii: "]"))
        #expect(String(decoding: buffer, as: UTF8.self) == #"["a",3]"#)
    }

    @Test func numbersAreWrittenAsTheirLexeme() throws {
        let text = #"[1.50,1E+2,-0,1e-7,99999999999999999999999]"#
        #expect(try JSONValue.parse(text).serialized == text)
    }

    @Test func reserializationNormalizesWhitespaceEscapesAndKeyOrder() throws {
        let received = "{ \"z\" : \"\\u0041\\/\" ,\n \"a\" : [ 1 , { \"y\":null, \"x\":\"\\u00e9\" } ] }"
        #expect(try JSONValue.parse(received).serialized == "{\"a\":[1,{\"x\":\"é\",\"y\":null}],\"z\":\"A/\"}")
    }

    @Test func descriptionIsTheSerialization() {
        let value: JSONValue = ["k": [true, "v"]]
        #expect(value.description == #"{"k":[true,"v"]}"#)
    }

    @Test func everyASCIICharacterAtEveryOffsetEscapesLikeTheReference() throws {
        // Covers both the eight-bytes-at-a-time scan and the byte-by-byte tail of writer and parser.
        for scalarValue in UInt8(0)..<0x80 {
            for offset in 0..<17 {
                var scalars = Array(repeating: Unicode.Scalar(UInt8(ascii: "a")), count: 17)
                scalars[offset] = Unicode.Scalar(scalarValue)
                let text = String(String.UnicodeScalarView(scalars))
                var buffer: [UInt8] = []
                appendJSONString(text, to: &buffer)
                #expect(String(decoding: buffer, as: UTF8.self) == referenceEscaped(text))
                #expect(try JSONValue.parse(buffer) == .string(text))
            }
        }
    }

    /// serde_json's escaping, one scalar at a time.
    private func referenceEscaped(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{8}": out += "\\b"
            case "\u{C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                out += "\\u00" + (hex.count == 1 ? "0" : "") + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

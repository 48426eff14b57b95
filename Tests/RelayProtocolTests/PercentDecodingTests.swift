// PercentDecoding: `%XX` escapes, `+` as itself or as a space, and what does not decode.

import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(2))) struct PercentDecodingTests {
    @Test func escapesDecodeToUTF8() throws {
        #expect(try PercentDecoding.decode("p%3Ass%2Fw%40rd%25") == "p:ss/w@rd%")
        #expect(try PercentDecoding.decode("caf%C3%A9%e2%82%ac") == "café€")
        #expect(try PercentDecoding.decode("") == "")
    }

    @Test func plusIsItselfInAURLComponentAndASpaceInAFormQuery() throws {
        #expect(try PercentDecoding.decode("a+b%2Bc") == "a+b+c")
        #expect(try PercentDecoding.decode("a+b%2Bc", plusIsSpace: true) == "a b+c")
        #expect(try PercentDecoding.decode("%20+", plusIsSpace: true) == "  ")
    }

    @Test(arguments: ["%", "%2", "abc%", "%zz", "%g0", "%0g", "%+F", "%-0", "% 1", "%%41"])
    func aPercentWithoutTwoHexDigitsIsAnInvalidEscape(_ text: String) {
        #expect(throws: PercentDecoding.Failure.invalidEscape) { try PercentDecoding.decode(text) }
        #expect(throws: PercentDecoding.Failure.invalidEscape) {
            try PercentDecoding.decode(text, plusIsSpace: true, allowsNUL: true)
        }
    }

    @Test(arguments: ["%ff", "%C3", "%C3%28", "%ED%A0%80", "%C0%AF", "a%80b"])
    func bytesThatAreNotUTF8DoNotDecode(_ text: String) {
        #expect(throws: PercentDecoding.Failure.notUTF8) { try PercentDecoding.decode(text) }
        #expect(throws: PercentDecoding.Failure.notUTF8) {
            try PercentDecoding.decode(text, plusIsSpace: true, allowsNUL: true)
        }
    }

    @Test func nulFailsUnlessAllowed() throws {
        #expect(throws: PercentDecoding.Failure.notUTF8) { try PercentDecoding.decode("a%00b") }
        #expect(try PercentDecoding.decode("a%00b", allowsNUL: true) == "a\u{0}b")
    }
}

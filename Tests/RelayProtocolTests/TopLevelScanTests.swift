import RelayProtocol
import Testing

/// `parseTopLevelMembers`: the desktop-frame look-up that validates like `parse` but builds only
/// the members it is asked for.
@Suite(.timeLimit(.minutes(2))) struct TopLevelScanTests {
    @Test func keepsOnlyTheNamedTopLevelMembers() throws {
        let text = #"{"type":"relay.pair_decision","payload":{"sessionID":"inner","big":[1,2,{"x":"\u00e9"}]},"sessionID":"outer","approved":true}"#
        let members = try #require(try JSONValue.parseTopLevelMembers(Array(text.utf8), keeping: ["type", "sessionID", "approved"]))
        #expect(members == ["type": "relay.pair_decision", "sessionID": "outer", "approved": true])
    }

    @Test func nonObjectDocumentsGiveNil() throws {
        for text in ["[1,2]", "\"x\"", "3", "null", " true "] {
            #expect(try JSONValue.parseTopLevelMembers(Array(text.utf8), keeping: ["type"]) == nil)
        }
    }

    @Test func rejectsWhatParseRejectsEvenInSkippedValues() {
        for text in [
            #"{"a":{"b":[1,]}}"#, #"{"a":"\ud800"}"#, #"{"a":01}"#, "{\"a\":\"\u{01}\"}", #"{"a":1} x"#,
            #"{"a":tru}"#, #"{"a":"\q"}"#, #"{"a":[1 2]}"#,
        ] {
            #expect(throws: JSONParseError.self, "\(text)") { try JSONValue.parseTopLevelMembers(Array(text.utf8), keeping: []) }
        }
        let invalidUTF8: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(throws: JSONParseError.self) { try JSONValue.parseTopLevelMembers(invalidUTF8, keeping: []) }
    }

    @Test func agreesWithParseOnMutatedDocuments() {
        var generator = SeededGenerator(seed: 0x5CA7_0001)
        let alphabet = Array(#"{}[],:"\\/ 0123456789-+.eEtrufalsn\u"#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xFF, 0xED]
        for _ in 0..<3000 {
            var bytes = Array(JSONValue.object(["k": generator.value(depth: 3), "z": generator.value(depth: 2)]).serialized.utf8)
            let position = Int.random(in: 0...bytes.count, using: &generator)
            if Bool.random(using: &generator) { bytes.insert(alphabet.randomElement(using: &generator)!, at: position) }
            let full = try? JSONValue.parse(bytes)
            let scanned = Result { () throws(JSONParseError) in try JSONValue.parseTopLevelMembers(bytes, keeping: ["k"]) }
            switch (full, scanned) {
            case (nil, .failure): break
            case (.object(let fields)?, .success(let members?)): #expect(members["k"] == fields["k"])
            case (.some(let value), .success(nil)): #expect(value.objectValue == nil)
            default: Issue.record("parse and scan disagree on \(String(decoding: bytes, as: UTF8.self))")
            }
        }
    }

    @Test func utf8ValidationMatchesTheStandardLibrary() {
        var generator = SeededGenerator(seed: 0x0F8_0001)
        for _ in 0..<3000 {
            let bytes = (0..<Int.random(in: 0...24, using: &generator)).map { _ in
                Bool.random(using: &generator) ? UInt8.random(in: 0x20...0x7E, using: &generator) : UInt8.random(in: 0x80...0xFF, using: &generator)
            }
            #expect(UTF8Validation.isValid(bytes) == (String(validating: bytes, as: UTF8.self) != nil))
        }
        #expect(UTF8Validation.isValid(Array("plain ascii, long enough for the word path".utf8)))
        #expect(UTF8Validation.isValid(Array("é€😀".utf8)))
        #expect(!UTF8Validation.isValid([0xED, 0xA0, 0x80]))  // a surrogate
        #expect(!UTF8Validation.isValid([0xC0, 0xAF]))  // overlong
    }
}

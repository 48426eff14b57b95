// Property loops over seeded random inputs: round trips and robustness of parse and write.

import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(2))) struct JSONPropertyTests {
    @Test func writtenValuesParseBackToThemselves() throws {
        var generator = SeededGenerator(seed: 0x5EED_0001)
        for _ in 0..<2000 {
            let value = generator.value()
            let written = value.serialized
            let reparsed = try JSONValue.parse(written)
            #expect(reparsed == value, "round trip of \(written)")
            #expect(reparsed.serialized == written)
        }
    }

    @Test func stringsSurviveEscapingByteForByte() throws {
        var generator = SeededGenerator(seed: 0x5EED_0002)
        for _ in 0..<2000 {
            let text = generator.string(maxLength: 40)
            var buffer: [UInt8] = []
            appendJSONString(text, to: &buffer)
            let parsed = try JSONValue.parse(buffer)
            #expect(parsed.stringValue.map { Array($0.utf8) } == Array(text.utf8))
            // Only the two ASCII delimiters and C0 controls are ever escaped.
            let escapes = buffer.filter { $0 == UInt8(ascii: "\\") }.count
            let expected = text.utf8.filter { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }.count
            #expect(escapes == expected + text.utf8.filter { $0 == UInt8(ascii: "\\") }.count)
        }
    }

    @Test func mutatedDocumentsNeverCrashTheParser() {
        var generator = SeededGenerator(seed: 0x5EED_0003)
        let alphabet = Array(#"{}[],:"\\/ 0123456789-+.eEtrufalsn\u"#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xFF, 0xED]
        var accepted = 0
        for _ in 0..<3000 {
            var bytes = Array(generator.value(depth: 3).serialized.utf8)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let position = Int.random(in: 0...bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes.insert(alphabet.randomElement(using: &generator)!, at: position)
                case 1 where position < bytes.count: bytes.remove(at: position)
                default: if position < bytes.count { bytes[position] = alphabet.randomElement(using: &generator)! }
                }
            }
            if let value = try? JSONValue.parse(bytes) {
                accepted += 1
                // Whatever is accepted re-serializes to something that parses to the same value.
                #expect((try? JSONValue.parse(value.serialized)) == value)
            }
        }
        #expect(accepted > 0)
    }
}

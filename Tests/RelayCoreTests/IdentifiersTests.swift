import RelayCore
import RelayProtocol
import Testing

/// PROTOCOL §1: relay-generated identifiers and the opaque-token rules.
@Suite("Identifiers", .timeLimit(.minutes(2)))
struct IdentifiersTests {
    static let base64URLAlphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    @Test func generatedIdentifiersHaveTheContractLengths() {
        #expect(Identifiers.deviceID().count == 16)
        #expect(Identifiers.deviceToken().count == 43)
        #expect(Identifiers.shortID().count == 14)
    }

    @Test func generatedIdentifiersUseOnlyTheBase64URLAlphabetWithoutPadding() {
        let samples = (0..<200).flatMap { _ in [Identifiers.deviceID(), Identifiers.deviceToken(), Identifiers.shortID()] }
        for sample in samples {
            #expect(sample.allSatisfy(Self.base64URLAlphabet.contains), "\(sample)")
        }
        // Across this many samples every symbol class shows up, including the two URL-safe ones.
        let seen = Set(samples.joined())
        #expect(seen.contains("-") && seen.contains("_"))
        #expect(!seen.contains("=") && !seen.contains("+") && !seen.contains("/"))
    }

    @Test func generatedIdentifiersPassTheirOwnValidation() {
        #expect(Identifiers.isOpaqueToken(Identifiers.deviceID(), minLength: 8))
        #expect(Identifiers.isOpaqueToken(Identifiers.deviceToken(), minLength: 22))
        #expect(Identifiers.isOpaqueToken(Identifiers.shortID(), minLength: 8))
    }

    @Test func generatedTokensAreDistinct() {
        let tokens = (0..<1_000).map { _ in Identifiers.deviceToken() }
        #expect(Set(tokens).count == tokens.count)
    }

    @Test func base64URLMatchesKnownVectors() {
        #expect(Identifiers.base64URL([UInt8]()) == "")
        #expect(Identifiers.base64URL(Array("f".utf8)) == "Zg")
        #expect(Identifiers.base64URL(Array("fo".utf8)) == "Zm8")
        #expect(Identifiers.base64URL(Array("foo".utf8)) == "Zm9v")
        #expect(Identifiers.base64URL(Array("foobar".utf8)) == "Zm9vYmFy")
        // 0xFB 0xFF is "+/8=" in standard base64.
        #expect(Identifiers.base64URL([0xFB, 0xFF]) == "-_8")
        #expect(Identifiers.base64URL([UInt8](repeating: 0, count: 32)).count == 43)
    }

    @Test func opaqueTokenLengthBoundsAreInclusive() {
        #expect(Identifiers.isOpaqueToken(String(repeating: "a", count: 22), minLength: 22))
        #expect(!Identifiers.isOpaqueToken(String(repeating: "a", count: 21), minLength: 22))
        #expect(Identifiers.isOpaqueToken(String(repeating: "a", count: 512), minLength: 22))
        #expect(!Identifiers.isOpaqueToken(String(repeating: "a", count: 513), minLength: 22))
        #expect(!Identifiers.isOpaqueToken("", minLength: 1))
    }

    @Test(arguments: ["+", "/", "=", " ", ".", ":", "~", "é", "\u{7F}", "\n"])
    func opaqueTokenRejectsCharactersOutsideTheAlphabet(bad: String) {
        let prefix = String(repeating: "A", count: 24)
        #expect(!Identifiers.isOpaqueToken(prefix + bad, minLength: 16))
        #expect(!Identifiers.isOpaqueToken(bad + prefix, minLength: 16))
    }

    @Test func opaqueTokenAcceptsEveryAlphabetCharacter() {
        #expect(Identifiers.isOpaqueToken("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", minLength: 22))
    }

    @Test func constantTimeEqualityComparesWholeValues() {
        let token = Identifiers.deviceToken()
        #expect(Identifiers.constantTimeEqual(token, token))
        #expect(Identifiers.constantTimeEqual(String(token), "" + token))
        #expect(Identifiers.constantTimeEqual("", ""))
        var last = Array(token.utf8)
        last[last.count - 1] ^= 0x01
        #expect(!Identifiers.constantTimeEqual(token, String(decoding: last, as: UTF8.self)))
        #expect(!Identifiers.constantTimeEqual(token, String(token.dropLast())))
        #expect(!Identifiers.constantTimeEqual(String(token.dropLast()), token))
        #expect(!Identifiers.constantTimeEqual(token, ""))
        #expect(!Identifiers.constantTimeEqual("abc", "ABC"))
    }

    @Test func redactionKeepsFirstSixAndLastFour() {
        #expect(Identifiers.redacted("abcdefghijklmnopqrstuv") == "abcdef...stuv")
        #expect(Identifiers.redacted("0123456789A") == "012345...789A")
    }

    @Test func redactionNeverRevealsAShortIdentifierWhole() {
        for id in ["", "a", "abcdef", "0123456789"] {
            let shown = Identifiers.redacted(id)
            #expect(shown == "***", "\(id) -> \(shown)")
        }
    }
}

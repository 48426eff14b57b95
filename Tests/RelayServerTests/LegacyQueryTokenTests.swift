// The legacy `/ws?token=` query token: found among the parameters, decoded as a form value.

import Testing

@testable import RelayServer

@Suite(.timeLimit(.minutes(2))) struct LegacyQueryTokenTests {
    @Test func theTokenParameterIsFoundAndDecoded() {
        #expect(RelayChildChannel.queryToken("/ws?token=abc_DEF-123") == "abc_DEF-123")
        #expect(RelayChildChannel.queryToken("/ws?x=1&token=a%2Db&y=2") == "a-b")
        #expect(RelayChildChannel.queryToken("/ws?tokens=a&token") == nil)
        #expect(RelayChildChannel.queryToken("/ws") == nil)
    }

    @Test func plusIsASpaceAndAnEscapedPlusIsAPlus() {
        #expect(RelayChildChannel.queryToken("/ws?token=a+b%2Bc") == "a b+c")
    }

    @Test func aValueThatDoesNotDecodeIsNoToken() {
        #expect(RelayChildChannel.queryToken("/ws?token=ab%zz") == nil)
        #expect(RelayChildChannel.queryToken("/ws?token=ab%2") == nil)
        #expect(RelayChildChannel.queryToken("/ws?token=%ff") == nil)
    }

    @Test func aDecodedNULIsKept() {
        #expect(RelayChildChannel.queryToken("/ws?token=a%00b") == "a\u{0}b")
    }
}

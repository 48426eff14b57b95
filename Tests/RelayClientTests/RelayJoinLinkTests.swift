import RelayClient
import RelayProtocol
import Testing

/// The QR code's join link (PROTOCOL §3): built by a desktop, parsed by a phone.
@Suite("Join link")
struct RelayJoinLinkTests {
    static let sessionID = "sess_0123456789abcdef"
    static let joinToken = "jt-AbCdEfGhIjKlMnOpQrStUvWx"
    static let relay = "https://relay.example.com/rc"

    @Test func aBuiltLinkParsesBackToTheSameValues() throws {
        let link = try RelayJoinLink(sessionID: Self.sessionID, joinToken: Self.joinToken, relayBaseURL: Self.relay)
        let text = link.link(page: "https://app.example.com/pair#old")
        #expect(text == "https://app.example.com/pair#sid=\(Self.sessionID)&jt=\(Self.joinToken)&relay=https%3A%2F%2Frelay.example.com%2Frc")
        #expect(try RelayJoinLink(parsing: text) == link)
        #expect(try RelayJoinLink(parsing: link.fragment) == link)
        #expect(try RelayJoinLink(parsing: String(link.fragment.dropFirst())) == link)
    }

    @Test func aLinkWrittenByABrowserReads() throws {
        // URLSearchParams leaves ':' and '/' escaped or not, writes a space as '+', and may order
        // the members differently; a relay on a plain port over http is allowed (a LAN install).
        let parsed = try RelayJoinLink(parsing: "  http://192.168.1.20:5173/#relay=http://192.168.1.20:8787&jt=\(Self.joinToken)&sid=\(Self.sessionID)\n")
        #expect(parsed.sessionID == Self.sessionID)
        #expect(parsed.joinToken == Self.joinToken)
        #expect(parsed.relayBaseURL == "http://192.168.1.20:8787")
    }

    @Test func unknownMembersAreKeptInOrderAndWrittenBack() throws {
        let text = "#sid=\(Self.sessionID)&v=3&jt=\(Self.joinToken)&hint=a%2Bb&relay=\(Self.relay)&note=two+words"
        let parsed = try RelayJoinLink(parsing: text)
        #expect(parsed.otherParameters == [
            .init(name: "v", value: "3"), .init(name: "hint", value: "a+b"), .init(name: "note", value: "two words"),
        ])
        #expect(try RelayJoinLink(parsing: parsed.fragment) == parsed)
        #expect(parsed.fragment.hasSuffix("&v=3&hint=a%2Bb&note=two%20words"))
    }

    /// Extension 12: `e2e=1`, `dk` and `ps` are read into ``RelayJoinLink/endToEnd``, written back
    /// after `relay`, and checked; the secret never shows in a description.
    @Test func endToEndMembersAreReadCheckedAndWrittenBack() throws {
        let dk = [UInt8](repeating: 0xD1, count: 32), ps = [UInt8](repeating: 0x5E, count: 32)
        let link = try RelayJoinLink(
            sessionID: Self.sessionID, joinToken: Self.joinToken, relayBaseURL: Self.relay,
            endToEnd: RelayEndToEndLink(desktopStaticKey: dk, pairingSecret: ps))
        let psText = Base64URL.encode(ps), dkText = Base64URL.encode(dk)
        #expect(link.fragment.hasSuffix("&e2e=1&dk=\(dkText)&ps=\(psText)"))
        let parsed = try RelayJoinLink(parsing: link.link(page: "https://app.example.com/pair"))
        #expect(parsed == link && parsed.endToEnd?.pairingSecret == ps && parsed.otherParameters.isEmpty)
        #expect(!"\(parsed)".contains(psText) && !"\(parsed.endToEnd!)".contains(psText))
        // In any order, among other members.
        let shuffled = try RelayJoinLink(parsing: "#ps=\(psText)&sid=\(Self.sessionID)&x=1&dk=\(dkText)&jt=\(Self.joinToken)&e2e=1&relay=\(Self.relay)")
        #expect(shuffled.endToEnd == link.endToEnd && shuffled.otherParameters == [.init(name: "x", value: "1")])

        let base = "#sid=\(Self.sessionID)&jt=\(Self.joinToken)&relay=\(Self.relay)"
        let refusals: [(String, RelayJoinLinkError)] = [
            ("&e2e=1&dk=\(dkText)", .invalidEndToEnd("ps must be base64url without padding")),
            ("&e2e=1&ps=\(psText)", .invalidEndToEnd("dk must be base64url without padding")),
            ("&e2e=2&dk=\(dkText)&ps=\(psText)", .invalidEndToEnd("e2e must be 1")),
            ("&e2e=1&dk=\(dkText)=&ps=\(psText)", .invalidEndToEnd("dk must be base64url without padding")),
            ("&e2e=1&dk=\(Base64URL.encode(dk.prefix(31)))&ps=\(psText)", .invalidEndToEnd("dk must be 32 bytes")),
            ("&e2e=1&dk=\(dkText)&ps=\(Base64URL.encode(ps + [1]))", .invalidEndToEnd("ps must be 32 bytes")),
            ("&dk=\(dkText)&ps=\(psText)", .invalidEndToEnd("dk and ps come only with e2e=1")),
            ("&e2e=1&e2e=1&dk=\(dkText)&ps=\(psText)", .repeatedParameter("e2e")),
        ]
        for (members, error) in refusals {
            #expect(throws: error, "\(members)") { try RelayJoinLink(parsing: base + members) }
        }
        #expect(!"\(RelayJoinLinkError.invalidEndToEnd("ps must be 32 bytes"))".contains(psText))
    }

    @Test func linksForSomethingElseAreNotJoinLinks() {
        for text in ["https://example.com/page", "https://example.com/#section-2", "#", "", "hello", "#a=1&b=2"] {
            #expect(throws: RelayJoinLinkError.notAJoinLink, "\(text)") { try RelayJoinLink(parsing: text) }
        }
    }

    @Test func eachMalformedMemberHasItsOwnError() {
        let sid = "sid=\(Self.sessionID)", jt = "jt=\(Self.joinToken)", relay = "relay=\(Self.relay)"
        let cases: [(String, RelayJoinLinkError)] = [
            ("#\(sid)&\(relay)", .missingParameter("jt")),
            ("#\(sid)&jt=&\(relay)", .missingParameter("jt")),
            ("#\(jt)&\(relay)", .missingParameter("sid")),
            ("#\(sid)&\(jt)", .missingParameter("relay")),
            ("#\(sid)&\(jt)&\(relay)&\(sid)", .repeatedParameter("sid")),
            ("#\(sid)&jt=%ZZ&\(relay)", .undecodable("jt")),
            ("#sid=short&\(jt)&\(relay)", .invalidSessionID),
            ("#sid=\(Self.sessionID)%21&\(jt)&\(relay)", .invalidSessionID),
            ("#\(sid)&jt=too-short-a-token&\(relay)", .invalidJoinToken),
            ("#\(sid)&\(jt)&relay=ftp://relay.example.com", .invalidRelayURL("the scheme must be http or https")),
            ("#\(sid)&\(jt)&relay=https://user:pw@relay.example.com", .invalidRelayURL("user info is not allowed")),
            ("#\(sid)&\(jt)&relay=https://relay.example.com/?x=1", .invalidRelayURL("a query or fragment is not allowed")),
            ("#\(sid)&\(jt)&relay=relay.example.com", .invalidRelayURL("not a URL")),
        ]
        for (text, expected) in cases {
            #expect(throws: expected, "\(text)") { try RelayJoinLink(parsing: text) }
        }
    }

    @Test func neitherTheLinkNorItsErrorsShowTheJoinToken() throws {
        let link = try RelayJoinLink(sessionID: Self.sessionID, joinToken: Self.joinToken, relayBaseURL: Self.relay)
        #expect(!link.description.contains(Self.joinToken))
        #expect(!"\(link)".contains(Self.joinToken))
        do {
            _ = try RelayJoinLink(parsing: "#sid=x&jt=\(Self.joinToken)&\("relay=\(Self.relay)")")
            Issue.record("a short sid was accepted")
        } catch {
            #expect(!error.description.contains(Self.joinToken))
        }
    }
}

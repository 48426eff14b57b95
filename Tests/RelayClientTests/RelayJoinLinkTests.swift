import RelayClient
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
        let text = "#sid=\(Self.sessionID)&e2e=1&jt=\(Self.joinToken)&dk=a%2Bb&relay=\(Self.relay)&note=two+words"
        let parsed = try RelayJoinLink(parsing: text)
        #expect(parsed.otherParameters == [
            .init(name: "e2e", value: "1"), .init(name: "dk", value: "a+b"), .init(name: "note", value: "two words"),
        ])
        #expect(try RelayJoinLink(parsing: parsed.fragment) == parsed)
        #expect(parsed.fragment.hasSuffix("&e2e=1&dk=a%2Bb&note=two%20words"))
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

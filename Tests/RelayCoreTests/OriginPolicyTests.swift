import RelayCore
import Testing

/// PROTOCOL §2.3: the allowed-origin set, the request and mobile checks, and the CORS echo.
@Suite("Origin policy", .timeLimit(.minutes(2)))
struct OriginPolicyTests {
    static let localDev = "http://localhost:4173"

    @Test(arguments: [
        ("http://localhost:4173", "http://localhost:4173"),
        ("http://localhost:4173/", "http://localhost:4173"),
        ("HTTP://LocalHost:4173/app/index.html?x=1#top", "http://localhost:4173"),
        ("http://example.com:80", "http://example.com"),
        ("https://Example.COM:443/path", "https://example.com"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("ws://relay.example:80/ws", "ws://relay.example"),
        ("wss://relay.example:443/ws", "wss://relay.example"),
        ("ftp://files.example:21", "ftp://files.example"),
        ("http://user:secret@host.example:8080", "http://host.example:8080"),
        ("http://[::1]:80", "http://[::1]"),
        ("http://[::1]:8080/x", "http://[::1]:8080"),
        ("  https://trimmed.example  ", "https://trimmed.example"),
    ])
    func originsAreReducedToSchemeHostAndNonDefaultPort(input: String, origin: String) {
        #expect(OriginPolicy.normalize(input) == origin)
    }

    @Test(arguments: ["capacitor://localhost", "ionic://localhost", "file:///tmp/index.html", "chrome-extension://abcdef"])
    func schemesWithoutATupleOriginReduceToNull(input: String) {
        #expect(OriginPolicy.normalize(input) == "null")
    }

    @Test(arguments: [
        "null", "", "http://", "http:example.com", "http://host:99999", "http://host:abc",
        "http://ex ample.com", "http://[::1", "://host", "1http://host", "http://host:+80", "http://host:-0",
    ])
    func unparseableOriginsHaveNoNormalForm(input: String) {
        #expect(OriginPolicy.normalize(input) == nil)
    }

    @Test func configuredEntriesAreTrimmedNormalizedAndEmptiesDropped() {
        let policy = OriginPolicy(entries: [" http://localhost:4173/ ", "", "   ", "https://App.Example:443/path", "not a url"])
        #expect(!policy.allowsAll)
        #expect(policy.origins == ["http://localhost:4173", "https://app.example"])
        #expect(!policy.isEmpty)
    }

    @Test func aSetOfOnlyEmptyOrUnparseableEntriesIsEmpty() {
        #expect(OriginPolicy(entries: []).isEmpty)
        #expect(OriginPolicy(entries: [""]).isEmpty)
        #expect(OriginPolicy(entries: [" ", "\t"]).isEmpty)
        #expect(OriginPolicy(entries: ["null", "http://", "not a url"]).isEmpty)
    }

    @Test func requestsWithoutAnOriginArePostAllowedButMobilesNeedOne() {
        let policy = OriginPolicy(entries: [Self.localDev])
        #expect(policy.allowsRequest(origin: nil))
        #expect(!policy.allowsMobile(origin: nil))
        #expect(policy.allowsMobile(origin: Self.localDev))
    }

    @Test func presentedOriginsAreNormalizedBeforeTheCheck() {
        let policy = OriginPolicy(entries: [Self.localDev])
        #expect(policy.allowsRequest(origin: "http://localhost:4173"))
        #expect(policy.allowsRequest(origin: "HTTP://LOCALHOST:4173"))
        #expect(policy.allowsRequest(origin: "http://localhost:4173/some/path"))
        #expect(!policy.allowsRequest(origin: "http://localhost:4174"))
        #expect(!policy.allowsRequest(origin: "https://localhost:4173"))
        #expect(!policy.allowsRequest(origin: "http://127.0.0.1:4173"))
        #expect(!policy.allowsRequest(origin: "https://evil.example"))
        #expect(!policy.allowsMobile(origin: "https://evil.example"))
    }

    @Test func literalNullOriginHeaderIsRejected() {
        #expect(!OriginPolicy(entries: [Self.localDev]).allowsRequest(origin: "null"))
        // Even when an opaque-origin entry put `null` into the set, the header `null` does not parse.
        let capacitor = OriginPolicy(entries: ["capacitor://localhost"])
        #expect(capacitor.origins == ["null"])
        #expect(!capacitor.allowsRequest(origin: "null"))
        #expect(!capacitor.allowsMobile(origin: "null"))
    }

    @Test func anOpaqueOriginEntryAdmitsEveryOpaqueOrigin() {
        let policy = OriginPolicy(entries: ["capacitor://localhost"])
        #expect(policy.allowsRequest(origin: "capacitor://localhost"))
        #expect(policy.allowsRequest(origin: "ionic://localhost"))
        #expect(policy.allowsMobile(origin: "capacitor://other-app"))
        #expect(!policy.allowsRequest(origin: "http://localhost"))
        #expect(!OriginPolicy(entries: [Self.localDev]).allowsRequest(origin: "capacitor://localhost"))
    }

    @Test func wildcardAllowsEverythingIncludingNullAndMissingOrigins() {
        let policy = OriginPolicy(entries: [Self.localDev, " * "])
        #expect(policy.allowsAll)
        #expect(!policy.isEmpty)
        #expect(policy.allowsRequest(origin: "https://anything.example"))
        #expect(policy.allowsRequest(origin: "null"))
        #expect(policy.allowsMobile(origin: nil))
        #expect(policy.allowsMobile(origin: "garbage"))
        #expect(OriginPolicy(entries: ["*"]).origins.isEmpty)
        #expect(!OriginPolicy(entries: ["*"]).isEmpty)
    }

    @Test func corsEchoesOnlyAnExactEntryOfTheSet() {
        let policy = OriginPolicy(entries: [Self.localDev, "https://app.example:443/"])
        #expect(policy.corsAllowOrigin(for: Self.localDev) == Self.localDev)
        #expect(policy.corsAllowOrigin(for: "https://app.example") == "https://app.example")
        // Allowed after normalization, but not byte-for-byte an entry: no echo.
        #expect(policy.allowsRequest(origin: "HTTP://LOCALHOST:4173"))
        #expect(policy.corsAllowOrigin(for: "HTTP://LOCALHOST:4173") == nil)
        #expect(policy.corsAllowOrigin(for: "http://localhost:4173/") == nil)
        #expect(policy.corsAllowOrigin(for: "https://evil.example") == nil)
        #expect(policy.corsAllowOrigin(for: nil) == nil)
    }

    @Test func corsWithWildcardAnswersStar() {
        let policy = OriginPolicy(entries: ["*"])
        #expect(policy.corsAllowOrigin(for: "https://anything.example") == "*")
        #expect(policy.corsAllowOrigin(for: nil) == "*")
    }
}

/// The URL reader behind origins, `PUBLIC_BASE_URL` and `relayWebSocketURL`.
@Suite("ParsedURL", .timeLimit(.minutes(2)))
struct ParsedURLTests {
    @Test func splitsSchemeHostPortPathAndQuery() throws {
        let url = try #require(ParsedURL("HTTPS://Relay.Example:8443/rc/base?x=1#frag"))
        #expect(url.scheme == "https")
        #expect(url.host == "relay.example")
        #expect(url.port == 8443)
        #expect(url.path == "/rc/base")
        #expect(url.query == "x=1")
        #expect(url.serialized == "https://relay.example:8443/rc/base?x=1")
    }

    @Test func serializationDropsTheDefaultPortAndGivesAnEmptyPathASlash() throws {
        #expect(try #require(ParsedURL("wss://h.example:443/ws")).serialized == "wss://h.example/ws")
        #expect(try #require(ParsedURL("http://h.example")).serialized == "http://h.example/")
        #expect(try #require(ParsedURL("ws://h.example:8787")).serialized == "ws://h.example:8787/")
    }

    @Test func ipv6HostsKeepTheirBrackets() throws {
        let url = try #require(ParsedURL("http://[2001:DB8::1]:9000/x"))
        #expect(url.host == "[2001:db8::1]")
        #expect(url.port == 9000)
    }

    @Test func defaultPortsOfSpecialSchemes() {
        #expect(ParsedURL.defaultPort("http") == 80)
        #expect(ParsedURL.defaultPort("ws") == 80)
        #expect(ParsedURL.defaultPort("https") == 443)
        #expect(ParsedURL.defaultPort("wss") == 443)
        #expect(ParsedURL.defaultPort("ftp") == 21)
        #expect(ParsedURL.defaultPort("capacitor") == nil)
    }
}

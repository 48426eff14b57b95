// NATS_URL parsing, redaction and the bus settings checks.

import Testing

@testable import RelayNATS

@Suite(.timeLimit(.minutes(2))) struct NATSServerListTests {
    @Test func plainURLGivesHostAndPort() throws {
        let list = try NATSServerList(parsing: "nats://127.0.0.1:14222")
        #expect(list.servers == [.init(host: "127.0.0.1", port: 14222)])
        #expect(list.credentials == .none)
        #expect(!list.tls)
        #expect(list.serverURLs == ["nats://127.0.0.1:14222"])
    }

    @Test func portDefaultsTo4222AndSchemeToNATS() throws {
        #expect(try NATSServerList(parsing: "nats://nats.internal").servers == [.init(host: "nats.internal", port: 4222)])
        #expect(try NATSServerList(parsing: "  nats.internal:5222/ \n").serverURLs == ["nats://nats.internal:5222"])
        #expect(try NATSServerList(parsing: "NATS://h").serverURLs == ["nats://h:4222"])
    }

    @Test func userAndPasswordArePercentDecoded() throws {
        let list = try NATSServerList(parsing: "tls://relay:p%40ss%3Aw%2Frd@nats.example.com:4443")
        #expect(list.credentials == .user("relay", password: "p@ss:w/rd"))
        #expect(list.tls)
        #expect(list.serverURLs == ["tls://nats.example.com:4443"])
    }

    @Test func tokenIsPercentDecoded() throws {
        #expect(try NATSServerList(parsing: "nats://s3cr%2Ft%20x@h").credentials == .token("s3cr/t x"))
        #expect(try NATSServerList(parsing: "nats://user:@h").credentials == .user("user", password: ""))
    }

    @Test func commaSeparatedListKeepsOrderAndSharesCredentials() throws {
        let list = try NATSServerList(parsing: "nats://u:p@a:1, nats://b:2 ,nats://[::1]:3,nats://u:p@[fe80::1]")
        #expect(list.servers.map(\.host) == ["a", "b", "::1", "fe80::1"])
        #expect(list.servers.map(\.port) == [1, 2, 3, 4222])
        #expect(list.credentials == .user("u", password: "p"))
        #expect(list.serverURLs == ["nats://a:1", "nats://b:2", "nats://[::1]:3", "nats://[fe80::1]:4222"])
    }

    @Test(arguments: [
        ("http://h:4222", "scheme \"http\""),
        ("wss://h", "use nats:// or tls://"),
        ("nats://h:0", "port \"0\" of server 1 is not in 1...65535"),
        ("nats://h:65536", "not in 1...65535"),
        ("nats://h:42a", "port \"42a\""),
        ("nats://h:+42", "port \"+42\""),
        ("nats://h:", "port \"\""),
        ("nats://:4222", "has no host"),
        ("nats://h_ost!:1", "invalid host"),
        ("nats://::1:4222", "IPv6 address in brackets"),
        ("nats://[::1:4222", "closing \"]\""),
        ("nats://[xyz]:1", "invalid IPv6 address"),
        ("nats://h/path", "path, query or fragment"),
        ("nats://h?x=1", "path, query or fragment"),
        ("", "NATS_URL is empty"),
        ("nats://a,,nats://b", "server 2 is empty"),
        ("nats://a:1,tls://b:2", "mix nats:// and tls://"),
        ("nats://u:p@a,nats://v:q@b", "different credentials"),
        ("nats://u:%zz@h", "password of server 1 has an invalid %-escape"),
        ("nats://%ff%fe@h", "token of server 1 does not decode to UTF-8"),
        ("nats://:secret@h", "password but no user"),
        ("nats://@h", "empty user or token"),
    ])
    func invalidURLsAreRefusedClearly(url: String, message: String) {
        #expect {
            _ = try NATSServerList(parsing: url)
        } throws: { error in
            (error as? NATSConfigurationError)?.message.contains(message) == true
        }
    }

    @Test func errorsAndDescriptionsNeverShowSecrets() throws {
        for url in ["nats://alice:hunter2@h:99999", "nats://alice:hunter2@h/x", "nats://tok-hunter2@h:0"] {
            let error = #expect(throws: NATSConfigurationError.self) { try NATSServerList(parsing: url) }
            #expect(error?.message.contains("hunter2") == false)
        }
        let user = try NATSServerList(parsing: "nats://alice:hunter2@h1,nats://h2:5000")
        #expect(user.description == "nats://alice:***@h1:4222,nats://alice:***@h2:5000")
        #expect(try NATSServerList(parsing: "tls://tok-hunter2@[::1]").description == "tls://***@[::1]:4222")
        #expect(try NATSServerList(parsing: "nats://h").description == "nats://h:4222")
    }
}

@Suite(.timeLimit(.minutes(2))) struct NATSConfigurationTests {
    @Test func defaultsMatchTheProtocol() throws {
        let configuration = try NATSClusterBusConfiguration(url: "nats://h")
        #expect(configuration.subjectPrefix == "codexchat.remote.relay")
        #expect(configuration.replayWindowMillis == 120_000)
        #expect(configuration.maxClockSkewMillis == 30_000)
        #expect(configuration.secret == nil)
        #expect(configuration.tlsCAFile == nil)
        try configuration.validate()
    }

    @Test func noRenderingShowsASecret() throws {
        let configuration = try NATSClusterBusConfiguration(
            url: "nats://alice:hunter2@h,nats://h2", secret: "current-secret-current-secret-xyz",
            previousSecret: "previous-secret-previous-secret-xyz")
        let token = try NATSServerList(parsing: "tls://tok-hunter2@h")
        var dumped = ""
        dump(configuration, to: &dumped)
        dump(token, to: &dumped)
        let renderings = [
            "\(configuration)", String(reflecting: configuration), dumped, "\(configuration.servers.credentials)",
            String(reflecting: token), String(reflecting: token.credentials),
        ]
        for rendering in renderings {
            #expect(!rendering.contains("hunter2"))
            #expect(!rendering.contains("secret-xyz"))
        }
        #expect("\(configuration)".contains("nats://alice:***@h:4222,nats://alice:***@h2:4222"))
    }

    @Test func secretsAreTrimmedAndBlankMeansNone() throws {
        let configuration = try NATSClusterBusConfiguration(url: "nats://h", secret: "  s3cret \n", previousSecret: " \t ")
        #expect(configuration.secret == "s3cret")
        #expect(configuration.previousSecret == nil)
        #expect(try NATSClusterBusConfiguration(url: "nats://h", secret: "   ").secret == nil)
    }

    @Test(arguments: ["a..b", "a b", "a.*", ">", ".a", "a.", ""])
    func subjectPrefixMustBeASubject(prefix: String) async throws {
        let configuration = try NATSClusterBusConfiguration(url: "nats://h", subjectPrefix: prefix)
        #expect(throws: NATSConfigurationError.self) { try configuration.validate() }
        let bus = NATSClusterBus(configuration: configuration)
        await #expect(throws: NATSConfigurationError.self) { try await bus.start(handler: { _ in }, connectivity: { _ in }) }
        await bus.shutdown()
    }

    @Test func windowsMustBePositiveAndPreviousSecretNeedsACurrentOne() throws {
        let zeroWindow = try NATSClusterBusConfiguration(url: "nats://h", replayWindowMillis: 0)
        #expect(throws: NATSConfigurationError("NATS_REPLAY_WINDOW_MS must be greater than 0.")) { try zeroWindow.validate() }
        let zeroSkew = try NATSClusterBusConfiguration(url: "nats://h", maxClockSkewMillis: 0)
        #expect(throws: NATSConfigurationError("NATS_MAX_CLOCK_SKEW_MS must be greater than 0.")) { try zeroSkew.validate() }
        let previousOnly = try NATSClusterBusConfiguration(url: "nats://h", previousSecret: "old")
        #expect(throws: NATSConfigurationError.self) { try previousOnly.validate() }
    }
}

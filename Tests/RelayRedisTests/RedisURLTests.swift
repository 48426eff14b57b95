import Testing

@testable import RelayRedis

/// REDIS_URL parsing: the forms operators write, each refusal with a message, and no password in
/// anything printed.
@Suite("RedisURL", .timeLimit(.minutes(2)))
struct RedisURLTests {
    @Test func hostAloneUsesTheDefaultPortAndDatabase() throws {
        let url = try RedisURL(parsing: "redis://redis.internal")
        #expect(url == RedisURL(endpoint: .tcp(host: "redis.internal", port: 6379)))
        #expect(url.database == 0)
        #expect(url.username == nil && url.password == nil)
    }

    @Test func portDatabaseAndPasswordAreRead() throws {
        let url = try RedisURL(parsing: "redis://:s3cret@10.0.0.5:6380/4")
        #expect(url.endpoint == .tcp(host: "10.0.0.5", port: 6380))
        #expect(url.password == "s3cret")
        #expect(url.username == nil)
        #expect(url.database == 4)
    }

    @Test func userAndPasswordArePercentDecoded() throws {
        let url = try RedisURL(parsing: "redis://relay%40ops:p%3Ass%2Fw%40rd%25@cache:7000/0")
        #expect(url.username == "relay@ops")
        #expect(url.password == "p:ss/w@rd%")
        #expect(url.endpoint == .tcp(host: "cache", port: 7000))
    }

    @Test func atSignsInThePasswordSplitAtTheLastOne() throws {
        let url = try RedisURL(parsing: "redis://user:a@b@host")
        #expect(url.username == "user")
        #expect(url.password == "a@b")
        #expect(url.endpoint == .tcp(host: "host", port: 6379))
    }

    @Test func userWithoutPasswordIsKeptButSendsNoAuth() throws {
        let url = try RedisURL(parsing: "redis://someone@host:6379")
        #expect(url.username == "someone")
        #expect(url.password == nil)
    }

    @Test func ipv6HostsAreBracketed() throws {
        #expect(try RedisURL(parsing: "redis://[::1]").endpoint == .tcp(host: "::1", port: 6379))
        #expect(try RedisURL(parsing: "redis://[fd00::2]:6380/2") == RedisURL(endpoint: .tcp(host: "fd00::2", port: 6380), database: 2))
        #expect(try RedisURL(parsing: "redis://:pw@[::1]:1/0").password == "pw")
    }

    @Test func trailingSlashAndUppercaseSchemeAreAccepted() throws {
        #expect(try RedisURL(parsing: "redis://host/").database == 0)
        #expect(try RedisURL(parsing: "REDIS://host:1").endpoint == .tcp(host: "host", port: 1))
    }

    @Test func unixSocketsTakeDatabaseAndCredentialsAsParameters() throws {
        #expect(try RedisURL(parsing: "unix:///run/redis/redis.sock") == RedisURL(endpoint: .unix(path: "/run/redis/redis.sock")))
        let url = try RedisURL(parsing: "redis+unix:///tmp/r.sock?db=3&user=relay&pass=p%26w")
        #expect(url.endpoint == .unix(path: "/tmp/r.sock"))
        #expect(url.database == 3)
        #expect(url.username == "relay")
        #expect(url.password == "p&w")
    }

    @Test(arguments: ["", "localhost:6379", "redis:/host", "redis//host", "//host:6379"])
    func textThatIsNotAURLIsRefused(_ text: String) {
        #expect(throws: RedisURLError.self) { try RedisURL(parsing: text) }
        #expect(kind(text) == .notAURL)
    }

    @Test(arguments: ["redis://", "redis://:pw@", "redis://:6379", "redis://[::1", "redis://::1:6379", "redis://a b"])
    func missingOrInvalidHostsAreRefused(_ text: String) {
        #expect(kind(text) == .notAURL)
    }

    @Test(arguments: ["http://host:6379", "tcp://host", "redis-sentinel://host", "://host"])
    func unknownSchemesAreRefused(_ text: String) {
        #expect(kind(text) == .unsupportedScheme)
    }

    @Test(arguments: ["redis://host:0", "redis://host:65536", "redis://host:abc", "redis://host:", "redis://host:-1",
        "redis://host:+80", "redis://host:99999999999999999999", "redis://[::1]:x"])
    func badPortsAreRefused(_ text: String) throws {
        let error = try #require(throws: RedisURLError.self) { try RedisURL(parsing: text) }
        #expect(error.kind == .badPort)
        #expect(error.description.contains("port"))
    }

    @Test(arguments: ["redis://host/x", "redis://host/-1", "redis://host/1.5", "redis://host/99999999999",
        "unix:///tmp/r.sock?db=two"])
    func badDatabasesAreRefused(_ text: String) throws {
        let error = try #require(throws: RedisURLError.self) { try RedisURL(parsing: text) }
        #expect(error.kind == .badDatabase)
        #expect(error.description.contains("database"))
    }

    @Test(arguments: ["redis://host/0?timeout=1", "redis://host#frag", "redis://host/0/1", "unix:///tmp/r.sock?tls=1"])
    func queriesAndExtraPathsAreRefused(_ text: String) {
        #expect(kind(text) == .unsupportedComponent)
    }

    @Test func invalidPercentEscapesAreRefusedWithoutShowingThePassword() throws {
        let error = try #require(throws: RedisURLError.self) { try RedisURL(parsing: "redis://:secret%zz@host") }
        #expect(error.kind == .notAURL)
        #expect(!error.description.contains("secret"))
    }

    @Test func tlsIsRefusedWithWhatToDoInstead() throws {
        let error = try #require(throws: RedisURLError.self) { try RedisURL(parsing: "rediss://:secret@redis.example:6380/0") }
        #expect(error.kind == .tlsUnsupported)
        #expect(error.description.contains("hiredis"))
        #expect(error.description.contains("0.14"))
        #expect(error.description.contains("TLS"))
        #expect(error.description.contains("private network"))
        #expect(error.description.contains("stunnel"))
        #expect(error.description.contains("redis://"))
        #expect(!error.description.contains("secret"))
    }

    @Test func errorMessagesNeverContainThePassword() {
        for text in ["redis://:hunter2@host:0", "redis://:hunter2@host/x", "redis://u:hunter2@[::1", "rediss://:hunter2@h",
            "redis://:hunter2@host?x=1", "ftp://:hunter2@host"]
        {
            do {
                _ = try RedisURL(parsing: text)
                Issue.record("\(text) parsed")
            } catch {
                #expect(!error.description.contains("hunter2"), "\(text)")
            }
        }
    }

    @Test func descriptionRedactsThePassword() throws {
        #expect(try RedisURL(parsing: "redis://:hunter2@cache:6380/3").description == "redis://:***@cache:6380/3")
        #expect(try RedisURL(parsing: "redis://ops%40relay:hunter2@cache").description == "redis://ops%40relay:***@cache:6379/0")
        #expect(try RedisURL(parsing: "redis://cache").description == "redis://cache:6379/0")
        #expect(try RedisURL(parsing: "redis://[::1]:7000").description == "redis://[::1]:7000/0")
        #expect(try RedisURL(parsing: "unix:///tmp/r.sock?db=1&pass=hunter2").description == "unix:///tmp/r.sock?db=1&pass=***")
        let url = try RedisURL(parsing: "redis://u:hunter2@h")
        #expect(!"\(url)".contains("hunter2"))
        #expect(!String(reflecting: url).contains("hunter2"))
        var dumped = ""
        dump(url, to: &dumped)
        #expect(!dumped.contains("hunter2"))
        // A configuration holding the URL prints it redacted too.
        struct Holder { var redis: RedisURL? }
        #expect(!"\(Holder(redis: url))".contains("hunter2"))
    }

    private func kind(_ text: String) -> RedisURLError.Kind? {
        do {
            _ = try RedisURL(parsing: text)
            return nil
        } catch {
            return error.kind
        }
    }
}

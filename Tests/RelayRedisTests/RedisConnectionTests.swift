import RelayTestSupport
import Synchronization
import Testing

@testable import RelayRedis

/// The connection against a real Redis: replies, pipelining, errors, timeouts, outages, shutdown.
@Suite("RedisConnection", .timeLimit(.minutes(2)))
struct RedisConnectionTests {
    @Test func everyReplyTypeIsDecoded() async throws {
        let connection = try await TestRedis.connect()
        let prefix = TestRedis.uniquePrefix()
        do {
            #expect(try await connection.send("PING") == .status("PONG"))
            #expect(try await connection.send("SET", "\(prefix):s", "value") == .status("OK"))
            #expect(try await connection.send("GET", "\(prefix):s") == .string(Array("value".utf8)))
            #expect(try await connection.send("GET", "\(prefix):missing") == .null)
            #expect(try await connection.send("INCRBY", "\(prefix):n", "-9223372036854775807") == .integer(-9_223_372_036_854_775_807))
            #expect(try await connection.send("RPUSH", "\(prefix):l", "a", "", "c") == .integer(3))
            #expect(
                try await connection.send("LRANGE", "\(prefix):l", "0", "-1")
                    == .array([.string(Array("a".utf8)), .string([]), .string(Array("c".utf8))]))
            // Nested arrays, and a nil inside an array.
            #expect(
                try await connection.send("EVAL", "return {1, {'x', {2}}, false}", "0")
                    == .array([.integer(1), .array([.string(Array("x".utf8)), .array([.integer(2)])]), .null]))
            // Arguments and replies are binary-safe.
            let binary: [UInt8] = [0, 255, 13, 10, 36, 42, 0]
            #expect(try await connection.send([Array("SET".utf8), Array("\(prefix):b".utf8), binary]) == .status("OK"))
            #expect(try await connection.send("GET", "\(prefix):b") == .string(binary))
        } catch {
            try? await TestRedis.deleteKeys(prefix: prefix, using: connection)
            await connection.shutdown()
            throw error
        }
        try await TestRedis.deleteKeys(prefix: prefix, using: connection)
        await connection.shutdown()
    }

    @Test func errorRepliesAreReturnedAndTheConnectionStaysUsable() async throws {
        let connection = try await TestRedis.connect()
        let key = "\(TestRedis.uniquePrefix()):list"
        let unknown = try await connection.send("NO-SUCH-COMMAND", "x")
        guard case .error(let message) = unknown else {
            Issue.record("expected an error reply, got \(unknown)")
            await connection.shutdown()
            return
        }
        #expect(message.hasPrefix("ERR unknown command"))
        _ = try await connection.send("RPUSH", key, "a")
        let replies = try await connection.pipeline([
            [Array("INCR".utf8), Array(key.utf8)], [Array("LLEN".utf8), Array(key.utf8)],
        ])
        #expect(replies.count == 2)
        #expect(replies[0].text == nil)
        if case .error(let wrongType) = replies[0] { #expect(wrongType.hasPrefix("WRONGTYPE")) } else { Issue.record("\(replies[0])") }
        #expect(replies[1] == .integer(1))
        #expect(throws: RedisError(.server, message)) { try unknown.throwingServerError() }
        #expect(try await connection.send("PING") == .status("PONG"))
        _ = try await connection.send("DEL", key)
        await connection.shutdown()
    }

    @Test func twoThousandConcurrentCommandsEachGetTheirOwnReply() async throws {
        let connection = try await TestRedis.connect()
        let prefix = TestRedis.uniquePrefix()
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            // 50 tasks × 40 commands, interleaved: every reply must reach the task that asked.
            for task in 0..<50 {
                group.addTask {
                    var mismatches = 0
                    for index in 0..<40 {
                        let payload = "\(task)-\(index)-\(UInt32.random(in: 0...UInt32.max))"
                        if try await connection.send("ECHO", payload) != .string(Array(payload.utf8)) { mismatches += 1 }
                    }
                    return mismatches
                }
            }
            // And 1000 single commands racing them, each incrementing its own counter.
            for index in 0..<1000 {
                group.addTask {
                    guard case .integer = try await connection.send("INCRBY", "\(prefix):counter:\(index % 10)", String(index)) else {
                        return 1
                    }
                    return 0
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        for bucket in 0..<10 {
            let expected = stride(from: bucket, to: 1000, by: 10).reduce(0, +)
            #expect(try await connection.send("GET", "\(prefix):counter:\(bucket)").text == String(expected))
        }
        try await TestRedis.deleteKeys(prefix: prefix, using: connection)
        await connection.shutdown()
    }

    @Test func pipelineRepliesComeBackInOrder() async throws {
        let connection = try await TestRedis.connect()
        let key = "\(TestRedis.uniquePrefix()):n"
        let commands = (0..<500).map { _ in [Array("INCR".utf8), Array(key.utf8)] }
        let replies = try await connection.pipeline(commands)
        #expect(replies == (1...500).map { .integer(Int64($0)) })
        #expect(try await connection.pipeline([]).isEmpty)
        _ = try await connection.send("DEL", key)
        await connection.shutdown()
    }

    @Test func commandsInFlightDoNotHoldSwiftThreads() async throws {
        // Four connections each blocked in BLPOP until the test pushes would starve the two-thread
        // cooperative pool if a connection blocked one of its threads: the sleeps below could then
        // never finish, and nothing would push (the suite's time limit ends the test). No timing
        // is asserted, so a busy machine cannot fail it.
        let prefix = TestRedis.uniquePrefix()
        var connections: [RedisConnection] = []
        for _ in 0..<4 { connections.append(try await TestRedis.connect()) }
        let pusher = try await TestRedis.connect()
        let answered = AnswerCount()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, connection) in connections.enumerated() {
                group.addTask {
                    _ = try await connection.send("BLPOP", "\(prefix):empty:\(index)", "0")
                    answered.increment()
                }
            }
            var ticks = 0
            while ticks < 10 {
                try await Task.sleep(for: .milliseconds(10))
                ticks += 1
            }
            #expect(answered.value == 0, "a BLPOP returned before anything was pushed")
            for index in connections.indices { _ = try await pusher.send("RPUSH", "\(prefix):empty:\(index)", "x") }
            try await group.waitForAll()
        }
        #expect(answered.value == 4)
        for connection in connections + [pusher] { await connection.shutdown() }
    }

    @Test func aCommandThatOutlivesTheTimeoutFailsAndTheConnectionRecovers() async throws {
        var configuration = TestRedis.quickConfiguration
        configuration.commandTimeout = .milliseconds(200)
        let log = AvailabilityLog()
        let connection = try await TestRedis.connect(configuration: configuration, onAvailabilityChange: log.callback)
        let clock = ContinuousClock()
        let started = clock.now
        do {
            _ = try await connection.send("BLPOP", "\(TestRedis.uniquePrefix()):empty", "5")
            Issue.record("BLPOP returned before the command timeout")
        } catch {
            #expect(RedisError.kind(of: error) == .timeout)
        }
        #expect(clock.now - started < .seconds(2))
        // Reported unavailable before the caller hears of the failure, then reconnected.
        #expect(log.values.prefix(2) == [true, false])
        #expect(await eventually(timeout: .seconds(5)) { log.values.count >= 3 })
        #expect(log.values == [true, false, true])
        #expect(try await connection.send("PING") == .status("PONG"))
        await connection.shutdown()
    }

    @Test func aKilledConnectionIsReestablished() async throws {
        let log = AvailabilityLog()
        let connection = try await TestRedis.connect(onAvailabilityChange: log.callback)
        let admin = try await TestRedis.connect()
        let id = try #require(try await connection.send("CLIENT", "ID").integer)
        // Only this client: other tests share the server.
        #expect(try await admin.send("CLIENT", "KILL", "ID", String(id)) == .integer(1))
        // The idle health check notices, then the thread reconnects.
        #expect(await eventually(timeout: .seconds(5)) { log.values.count >= 3 })
        #expect(log.values == [true, false, true])
        let newID = try #require(try await connection.send("CLIENT", "ID").integer)
        #expect(newID != id)
        await connection.shutdown()
        await admin.shutdown()
    }

    @Test func commandsFailFastWhileRedisIsDownAndWorkAgainAfterwards() async throws {
        try await RedisServerProcess.with { server in
            let log = AvailabilityLog()
            let connection = try await TestRedis.connect(server.url, onAvailabilityChange: log.callback)
            #expect(try await connection.send("SET", "k", "before") == .status("OK"))

            server.stop()
            #expect(await eventually(timeout: .seconds(5)) { log.values.count >= 2 })
            #expect(log.values == [true, false])
            #expect(!connection.isAvailable)
            let clock = ContinuousClock()
            for _ in 0..<20 {
                let started = clock.now
                do {
                    _ = try await connection.send("GET", "k")
                    Issue.record("a command succeeded while Redis was down")
                } catch {
                    #expect(RedisError.kind(of: error) == .unavailable)
                }
                // Refused at once, not after a connect attempt or a timeout.
                #expect(clock.now - started < .milliseconds(250))
            }

            try await server.start()
            #expect(await connection.waitUntilAvailable(timeout: .seconds(5)))
            #expect(log.values == [true, false, true])
            // A fresh server (nothing was saved): the command works, the data is gone.
            #expect(try await connection.send("GET", "k") == .null)
            await connection.shutdown()
        }
    }

    @Test func aConnectionMadeBeforeRedisStartsConnectsOnceItDoes() async throws {
        try await RedisServerProcess.with { server in
            server.stop()
            let log = AvailabilityLog()
            let connection = RedisConnection(url: server.url, configuration: TestRedis.quickConfiguration, onAvailabilityChange: log.callback)
            #expect(await !connection.waitUntilAvailable(timeout: .milliseconds(300)))
            #expect(!connection.isAvailable)
            await #expect(throws: RedisError.self) { try await connection.send("PING") }
            try await server.start()
            #expect(await connection.waitUntilAvailable(timeout: .seconds(5)))
            #expect(try await connection.send("PING") == .status("PONG"))
            #expect(log.values == [true])
            await connection.shutdown()
        }
    }

    @Test func shutdownFailsCommandsInFlightAndRefusesNewOnes() async throws {
        var configuration = TestRedis.quickConfiguration
        configuration.commandTimeout = .seconds(30)
        let log = AvailabilityLog()
        let connection = try await TestRedis.connect(configuration: configuration, onAvailabilityChange: log.callback)
        let admin = try await TestRedis.connect()
        let key = "\(TestRedis.uniquePrefix()):empty"
        let id = try #require(try await connection.send("CLIENT", "ID").integer)
        let clock = ContinuousClock()
        async let blocked: RedisError.Kind? = Self.failure { try await connection.send("BLPOP", key, "20") }
        async let queuedBehind: RedisError.Kind? = Self.failure {
            try await Task.sleep(for: .milliseconds(20))
            return try await connection.send("PING")
        }
        // Wait until Redis sees the BLPOP, so it is truly in flight.
        #expect(
            try await eventually(timeout: .seconds(5)) {
                (try await admin.send("CLIENT", "LIST", "ID", String(id)).text ?? "").contains("cmd=blpop")
            })
        let started = clock.now
        await connection.shutdown()
        #expect(clock.now - started < .seconds(1))
        #expect(await blocked == .shutdown)
        #expect(await queuedBehind == .shutdown)
        #expect(await Self.failure { try await connection.send("PING") } == .shutdown)
        #expect(!connection.isAvailable)
        #expect(await !connection.waitUntilAvailable(timeout: .seconds(1)))
        await connection.shutdown()
        // Shutdown is not an outage: no `false` is reported.
        #expect(log.values == [true])
        await admin.shutdown()
    }

    @Test func passwordUserAndDatabaseAreSentAfterConnecting() async throws {
        let arguments = ["--requirepass", "top-secret", "--user", "relay", "on", ">relay-pass", "~*", "&*", "+@all"]
        try await RedisServerProcess.with(arguments: arguments) { server in
            var url = server.url
            url.password = "top-secret"
            url.database = 3
            let withPassword = try await TestRedis.connect(url)
            #expect((try await withPassword.send("CLIENT", "INFO").text ?? "").contains(" db=3 "))
            await withPassword.shutdown()

            url.username = "relay"
            url.password = "relay-pass"
            let withUser = try await TestRedis.connect(url)
            #expect(try await withUser.send("ACL", "WHOAMI").text == "relay")
            await withUser.shutdown()

            url.password = "wrong"
            let refused = RedisConnection(url: url, configuration: TestRedis.quickConfiguration)
            #expect(await !refused.waitUntilAvailable(timeout: .milliseconds(300)))
            await refused.shutdown()
        }
    }

    @Test func unixSocketsWork() async throws {
        try await RedisServerProcess.with { server in
            let connection = try await TestRedis.connect(RedisURL(endpoint: .unix(path: server.socketPath), database: 1))
            #expect(try await connection.send("PING") == .status("PONG"))
            #expect((try await connection.send("CLIENT", "INFO").text ?? "").contains(" db=1 "))
            await connection.shutdown()
        }
    }

    /// The kind of `RedisError` `body` fails with; nil when it succeeds.
    private static func failure(_ body: () async throws -> RedisReply) async -> RedisError.Kind? {
        do {
            _ = try await body()
            return nil
        } catch {
            return RedisError.kind(of: error)
        }
    }
}

/// How many blocked commands have answered, shared with the tasks that sent them.
private final class AnswerCount: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

import Foundation
import Logging
import RelayTestClient
import RelayCore
import RelayLocalCluster
import RelayRedis
import RelayTestSupport
import Testing

/// What an unknown or guessed token costs a node, and the budget that bounds it (issue: edge
/// hardening): one token-index lookup instead of a reload of every session, a full reload at most
/// once per interval for records written by nodes that keep no index, and a per-IP failure budget.
@Suite("WebSocket auth at the edge", .timeLimit(.minutes(2)))
struct AuthHardeningTests {
    /// A stored session with fresh random tokens.
    static func record(_ index: Int) -> SessionRecord {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return SessionRecord(
            sessionID: "cost-\(index)-" + opaque(20), joinToken: StoredToken(opaque(), keepingClear: true),
            joinTokenExpiresAtMillis: now + 600_000, desktopSessionToken: StoredToken(opaque(), keepingClear: true), relayWebSocketURL: "ws://127.0.0.1/ws", idleTimeoutSeconds: 1800,
            createdAtMillis: now, lastActivityAtMillis: now)
    }

    /// Redis's own count of the commands it has processed.
    static func commandsProcessed(_ redis: RedisConnection) async throws -> Int {
        let info = try await redis.send("INFO", "stats").text ?? ""
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("total_commands_processed:") {
            if let count = Int(line.dropFirst("total_commands_processed:".count)) { return count }
        }
        throw TestFailure("INFO stats has no total_commands_processed: \(info.prefix(200))")
    }

    /// One WebSocket auth with `token`; returns the text frames and the close code.
    static func authenticate(_ relay: TestRelay, token: String, headers: [(String, String)] = []) async throws
        -> (texts: [String], closeCode: UInt16?)
    {
        let socket = try await RelayWebSocket.connect(to: relay.wsURL, headers: headers)
        try await socket.sendText(#"{"type":"relay.auth","token":"\#(token)"}"#)
        return try await socket.readUntilClosed(.seconds(20))
    }

    @Test(.timeLimit(.minutes(3)))
    func aThousandUnknownTokensAgainstThreeThousandSessionsCostFewerThanFiveRedisCommandsEach() async throws {
        // A Redis of its own, so the count is this test's alone.
        let server = try LocalDependencyServer(.redis(appendOnly: false), executable: try TestServices.redisServer())
        try await server.start()
        defer { server.terminateIfRunning() }
        let redis = RedisConnection(url: try RedisURL(parsing: server.url), logger: Logger(label: "cost-test"))
        defer { Task { await redis.shutdown() } }
        #expect(await redis.waitUntilAvailable(timeout: .seconds(10)))
        let store = RedisStateStore(connection: redis, keyPrefix: "cost")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask { for i in stride(from: worker, to: 3000, by: 8) { try await store.save(Self.record(i), version: 1) } }
            }
            try await group.waitForAll()
        }

        try await withRelay({
            $0["REDIS_URL"] = server.url
            $0["REDIS_KEY_PREFIX"] = "cost"
            $0["MAX_WS_AUTH_FAILURES_PER_MINUTE"] = "1000000"  // the lookup's cost, not the budget's
        }) { relay in
            #expect(try await eventually(timeout: .seconds(30)) { try await relay.metrics()["sessions"]?.intValue == 3000 })
            let before = try await Self.commandsProcessed(redis)
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Four at a time: enough to overlap lookups, light enough for a suite run beside it.
                for worker in 0..<4 {
                    group.addTask {
                        for _ in 0..<250 {
                            let (texts, code) = try await Self.authenticate(relay, token: opaque())
                            #expect(texts == [#"{"reason":"session_expired","type":"disconnect"}"#], "worker \(worker)")
                            #expect(code == 1008)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let commands = try await Self.commandsProcessed(redis) - before - 1
            let perAuth = Double(commands) / 1000
            print("AuthHardeningTests: 1000 unknown-token auths with 3000 stored sessions: \(commands) Redis commands, \(perAuth) per auth")
            #expect(perAuth < 5)
            #expect(try await relay.metrics()["wsAuthFailureReasons"]?["token_not_found"]?.intValue == 1000)
        }
    }

    @Test func aRecordWrittenWithoutTheTokenIndexStillAuthenticates() async throws {
        // A reference node writes the §6.1 layout only: record, version and the id set.
        let prefix = "noindex-" + opaque(8)
        let redis = RedisConnection(url: try RedisURL(parsing: try TestServices.redisURL()), logger: Logger(label: "noindex-test"))
        defer { Task { await redis.shutdown() } }
        #expect(await redis.waitUntilAvailable(timeout: .seconds(10)))
        try await withRelay({
            $0["REDIS_URL"] = try? TestServices.redisURL()
            $0["REDIS_KEY_PREFIX"] = prefix
        }) { relay in
            let record = Self.record(0)
            _ = try await redis.send([
                Array("SET".utf8), Array("\(prefix):session:v1:\(record.sessionID)".utf8), SessionRecordJSON.encode(record, layout: .plain),
            ])
            _ = try await redis.send("SET", "\(prefix):session:version:v1:\(record.sessionID)", "1")
            _ = try await redis.send("SADD", "\(prefix):sessions:index:v1", record.sessionID)

            let socket = try await RelayWebSocket.connect(to: relay.wsURL)
            try await socket.sendText(#"{"type":"relay.auth","token":"\#(record.desktopSessionToken.clear!)"}"#)
            let ok = try await socket.nextFrame(.seconds(10))
            #expect(ok["type"]?.stringValue == "auth_ok")
            #expect(ok["sessionID"]?.stringValue == record.sessionID)
            await socket.close()
        }
        let keys = try await redis.send("KEYS", "\(prefix):*").array?.compactMap(\.text) ?? []
        if !keys.isEmpty { _ = try await redis.send(["DEL"] + keys) }
    }

    @Test func aTokenLookupDuringARedisOutageTellsTheClientToRetryNotThatItsSessionIsGone() async throws {
        let server = try LocalDependencyServer(.redis(appendOnly: false), executable: try TestServices.redisServer())
        try await server.start()
        defer { server.terminateIfRunning() }
        try await withRelay({ $0["REDIS_URL"] = server.url }) { relay in
            // A token this node has never seen, so only the store could say whose it is.
            try await server.stop(graceful: false)
            let (texts, code) = try await Self.authenticate(relay, token: opaque())
            #expect(code == 1011)
            #expect(!texts.contains { $0.contains("session_expired") }, "\(texts)")
            #expect(try await relay.prometheusText().contains(#"relay_ws_auth_failures_total{reason="token_rotation_persist_failed"} 1"#))
        }
    }

    @Test func failedAuthsAreBudgetedPerClientIP() async throws {
        try await withRelay({
            $0["MAX_WS_AUTH_FAILURES_PER_MINUTE"] = "3"
            $0["TRUST_PROXY"] = "1"
        }) { relay in
            let first = [("X-Forwarded-For", "198.51.100.7")]
            for _ in 0..<3 {
                let (texts, code) = try await Self.authenticate(relay, token: opaque(), headers: first)
                #expect(texts == [#"{"reason":"session_expired","type":"disconnect"}"#])
                #expect(code == 1008)
            }
            // Over budget: refused before any lookup, with a reason that keeps the app's credentials.
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let (texts, code) = try await Self.authenticate(relay, token: paired.desktop.desktopSessionToken, headers: first)
            #expect(texts == [#"{"reason":"socket_rate_limited","type":"disconnect"}"#])
            #expect(code == 1008)
            // Another client IP has a budget of its own.
            let other = try await Self.authenticate(relay, token: opaque(), headers: [("X-Forwarded-For", "198.51.100.8")])
            #expect(other.texts == [#"{"reason":"session_expired","type":"disconnect"}"#])
            let reasons = try await relay.metrics()["wsAuthFailureReasons"]
            #expect(reasons?["token_not_found"]?.intValue == 4)
            #expect(reasons?["auth_rate_limited"]?.intValue == 1)
            #expect(relay.logs.contains("ws_auth_failure reason=auth_rate_limited remote_ip=198.51.100.7"))
        }
    }

    @Test func aJoinTokenLivesNoLongerThanTheCapWhateverTheDesktopAsks() async throws {
        let clock = ManualClock()
        try await withRelay(clock: clock, { $0["MAX_JOIN_TOKEN_TTL_MS"] = "300" }) { relay in
            let sessionID = opaque(24), joinToken = opaque(), desktopToken = opaque()
            let start = try await relay.post("/pair/start", [
                "sessionID": .string(sessionID), "joinToken": .string(joinToken), "desktopSessionToken": .string(desktopToken),
                "joinTokenExpiresAt": .string(futureTimestamp(86_400)),
            ], headers: [("Origin", allowedOrigin)])
            #expect(start.status == 200)
            clock.advance(byMillis: 300)
            let join = try await relay.post("/pair/join", [
                "sessionID": .string(sessionID), "joinToken": .string(joinToken), "deviceName": .string("Phone"),
            ], headers: [("Origin", allowedOrigin)])
            #expect(join.status == 410)
            #expect(try join.json()["error"]?.stringValue == "join_token_expired")
        }
    }
}

import Logging
import RelayCore
import RelayLocalCluster
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayRedis

/// Redis that survives its own failover: a connection that finds the master through Sentinel and
/// follows a promotion, and writes that count only once replicas confirmed them (`WAIT`). Real
/// redis-server processes on loopback: a master, a replica and a Sentinel.
@Suite("Redis high availability", .serialized, .timeLimit(.minutes(2)))
struct RedisHighAvailabilityTests {
    /// A master and one replica of it, both running, the replica in sync.
    static func masterAndReplica() async throws -> (master: LocalDependencyServer, replica: LocalDependencyServer) {
        let executable = try TestServices.redisServer()
        let master = try LocalDependencyServer(.redis(appendOnly: false), executable: executable)
        try await master.start()
        let replica = try LocalDependencyServer(
            .redis(appendOnly: false), executable: executable, arguments: ["--replicaof", "127.0.0.1", "\(master.port)"])
        try await replica.start()
        let raw = try await TestRedis.connect(try RedisURL(parsing: master.url))
        defer { Task { await raw.shutdown() } }
        let synced = await eventually(timeout: .seconds(30)) {
            // Online: the first sync is over, so the replica acknowledges what it applies.
            (try? await raw.send("INFO", "replication").text)?.contains("state=online") == true
        }
        guard synced else { throw TestFailure("the replica never connected: \(replica.logs.suffix(500))") }
        return (master, replica)
    }

    @Test func aWriteCountsOnlyOnceTheRequiredReplicasConfirmedIt() async throws {
        let (master, replica) = try await Self.masterAndReplica()
        defer {
            master.terminateIfRunning()
            replica.terminateIfRunning()
        }
        let connection = try await TestRedis.connect(try RedisURL(parsing: master.url))
        defer { Task { await connection.shutdown() } }
        let prefix = TestRedis.uniquePrefix()
        let confirmed = RedisStateStore(connection: connection, keyPrefix: prefix, minReplicasAck: 1, waitTimeoutMillis: 2000)
        try await confirmed.save(Records.paired(), version: 1)
        #expect(try await confirmed.compareAndSave(Records.paired(), version: 2, expected: 1))

        // Two replicas asked of a master that has one: refused, named, counted.
        let twoReplicas = RedisStateStore(connection: connection, keyPrefix: prefix, minReplicasAck: 2, waitTimeoutMillis: 100)
        await #expect(throws: RedisError.self) { try await twoReplicas.save(Records.paired(), version: 3) }
        do {
            _ = try await twoReplicas.compareAndSave(Records.paired(), version: 4, expected: 3)
            Issue.record("an unconfirmed write was acknowledged")
        } catch let error as RedisError {
            #expect(error.kind == .notReplicated)
            #expect(error.message.contains("1 of 2 replicas"))
        }
    }

    @Test func aConnectionThroughSentinelFollowsAFailoverAndKeepsConfirmedWrites() async throws {
        let (master, replica) = try await Self.masterAndReplica()
        let sentinel = try LocalDependencyServer(
            .sentinel(masterName: "relay", masterPort: master.port, quorum: 1, downAfterMillis: 1000),
            executable: try TestServices.redisServer())
        defer {
            master.terminateIfRunning()
            replica.terminateIfRunning()
            sentinel.terminateIfRunning()
        }
        try await sentinel.start()
        let sentinelRaw = try await TestRedis.connect(try RedisURL(parsing: sentinel.url))
        defer { Task { await sentinelRaw.shutdown() } }
        // Sentinel learns the replica from the master; it can promote only what it knows.
        let knowsReplica = await eventually(timeout: .seconds(30)) {
            (try? await sentinelRaw.send("SENTINEL", "replicas", "relay").array?.isEmpty) == false
        }
        #expect(knowsReplica)

        let configuration = try RedisSentinelConfiguration(parsing: "127.0.0.1:1,127.0.0.1:\(sentinel.port)", masterName: "relay")
        let connection = RedisConnection(
            url: RedisURL(endpoint: .tcp(host: "ignored.invalid", port: 6379)), sentinel: configuration,
            logger: Logger(label: "sentinel-test"))
        defer { Task { await connection.shutdown() } }
        #expect(await connection.waitUntilAvailable(timeout: .seconds(20)))
        #expect(connection.sentinelMaster == "127.0.0.1:\(master.port)", "the first Sentinel is down: the second answered")

        let prefix = TestRedis.uniquePrefix()
        let store = RedisStateStore(connection: connection, keyPrefix: prefix, minReplicasAck: 1, waitTimeoutMillis: 2000)
        try await store.save(Records.paired(), version: 1)

        try await master.stop(graceful: false)
        // Sentinel promotes the replica; the connection follows without being told anything.
        let followed = await eventually(timeout: .seconds(60)) {
            connection.sentinelMaster == "127.0.0.1:\(replica.port)" && connection.isAvailable
        }
        #expect(followed, "still at \(connection.sentinelMaster ?? "none")")
        #expect(connection.masterChanges == 1)
        // The write the replica confirmed before the kill is on the new master.
        let survivor = RedisStateStore(connection: connection, keyPrefix: prefix)
        // Sentinel ends the promoted server's client connections (CLIENT KILL) as part of the
        // failover, possibly just after the connection reached it: a read may meet that once.
        var loaded: StoredSession?
        for _ in 0..<20 where loaded == nil {
            do {
                loaded = try await survivor.load(sessionID: "session-0123456789")
            } catch {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        let stored = try #require(loaded)
        #expect(stored == StoredSession(record: Records.paired(), version: 1))
        // And the new master takes writes (with no replica left, only unconfirmed ones).
        try await survivor.save(Records.paired(), version: 2)
        await #expect(throws: RedisError.self) { try await store.save(Records.paired(), version: 3) }
    }

    @Test func aReconnectToAnotherServerIsReported() async throws {
        let server = try LocalDependencyServer(.redis(appendOnly: false), executable: try TestServices.redisServer())
        try await server.start()
        defer { server.terminateIfRunning() }
        let connection = RedisConnection(url: try RedisURL(parsing: server.url), logger: Logger(label: "server-change-test"))
        defer { Task { await connection.shutdown() } }
        let changes = Mutex(0)
        connection.onServerChange { changes.withLock { $0 += 1 } }
        #expect(await connection.waitUntilAvailable(timeout: .seconds(20)))
        // The same server again (a lost connection): no change.
        _ = try await connection.send("CLIENT", "KILL", "TYPE", "normal")
        let back = await eventually(timeout: .seconds(20)) {
            guard connection.isAvailable else { return false }
            return (try? await connection.send("PING")) == .status("PONG")
        }
        #expect(back)
        #expect(changes.withLock { $0 } == 0)
        // Another process on the same address (a restart without persistence, a replaced server).
        try await server.stop(graceful: false)
        try await server.start()
        #expect(await eventually(timeout: .seconds(30)) { changes.withLock { $0 } == 1 })
    }

    @Test func sentinelListsParseAndRefuseWhatTheyCannotUse() throws {
        let parsed = try RedisSentinelConfiguration(parsing: " sentinel-0:26379, [::1]:26380 ,sentinel-2", masterName: "relay")
        #expect(parsed.sentinels.map(\.description) == ["sentinel-0:26379", "[::1]:26380", "sentinel-2:26379"])
        #expect(parsed.description == "sentinel://sentinel-0:26379,[::1]:26380,sentinel-2:26379/relay")
        for bad in ["", " , ", "host:0", "host:99999", "host:port", ":26379", "[::1"] {
            #expect(throws: RedisURLError.self, "\(bad)") { try RedisSentinelConfiguration(parsing: bad) }
        }
        #expect(throws: RedisURLError.self) { try RedisSentinelConfiguration(parsing: "h:1", masterName: "two words") }
    }
}

// Fixtures: the shared test Redis, private redis-server processes, unique key prefixes.

import RelayCore
import RelayLocalCluster
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayRedis

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum TestRedis {
    /// The shared Redis every test that needs no restart uses (`RELAY_TEST_REDIS_URL`).
    static func url() throws -> RedisURL { try RedisURL(parsing: TestServices.redisURL()) }

    /// Fast reconnects and health checks, so tests see outages and recoveries quickly.
    static let quickConfiguration = RedisConnection.Configuration(
        connectTimeout: .seconds(1), commandTimeout: .seconds(2), initialBackoff: .milliseconds(20),
        maximumBackoff: .milliseconds(200), healthCheckInterval: .milliseconds(100))

    /// A connection that is already available.
    static func connect(
        _ url: RedisURL? = nil, configuration: RedisConnection.Configuration = quickConfiguration,
        onAvailabilityChange: (@Sendable (Bool) -> Void)? = nil
    ) async throws -> RedisConnection {
        let url = try url ?? self.url()
        let connection = RedisConnection(url: url, configuration: configuration, onAvailabilityChange: onAvailabilityChange)
        guard await connection.waitUntilAvailable(timeout: .seconds(5)) else {
            await connection.shutdown()
            throw TestFailure("cannot connect to the test Redis at \(url) within 5 s")
        }
        return connection
    }

    /// A key prefix no other test uses.
    static func uniquePrefix() -> String {
        "relay-test:" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    /// Deletes every key under `prefix`.
    static func deleteKeys(prefix: String, using connection: RedisConnection) async throws {
        let reply = try await connection.send("KEYS", "\(prefix):*")
        let keys = reply.array?.compactMap(\.text) ?? []
        if !keys.isEmpty { _ = try await connection.send(["DEL"] + keys).throwingServerError() }
    }
}

/// A `RedisStateStore` on the shared test Redis under its own prefix, with a second connection
/// for looking at raw keys.
struct RedisStoreFixture {
    let store: RedisStateStore
    let raw: RedisConnection
    let prefix: String

    static func make(sessionRetentionMillis: Int64 = 600_000, trustedSessionTTLMillis: Int64 = 2_592_000_000) async throws
        -> RedisStoreFixture
    {
        let prefix = TestRedis.uniquePrefix()
        let connection = try await TestRedis.connect()
        let raw = try await TestRedis.connect()
        let store = RedisStateStore(
            connection: connection, keyPrefix: prefix, sessionRetentionMillis: sessionRetentionMillis,
            trustedSessionTTLMillis: trustedSessionTTLMillis)
        return RedisStoreFixture(store: store, raw: raw, prefix: prefix)
    }

    func tearDown() async {
        try? await TestRedis.deleteKeys(prefix: prefix, using: raw)
        await store.connection.shutdown()
        await raw.shutdown()
    }

    /// Runs `body` with a fresh fixture and always tears it down.
    static func with(
        sessionRetentionMillis: Int64 = 600_000, trustedSessionTTLMillis: Int64 = 2_592_000_000,
        _ body: (RedisStoreFixture) async throws -> Void
    ) async throws {
        let fixture = try await make(
            sessionRetentionMillis: sessionRetentionMillis, trustedSessionTTLMillis: trustedSessionTTLMillis)
        do {
            try await body(fixture)
        } catch {
            await fixture.tearDown()
            throw error
        }
        await fixture.tearDown()
    }

    func get(_ key: String) async throws -> RedisReply { try await raw.send("GET", key) }

    func pttl(_ key: String) async throws -> Int64 {
        try await raw.send("PTTL", key).integer ?? -3
    }
}

/// A redis-server this test started, on a free loopback port in its own temporary directory.
final class RedisServerProcess: @unchecked Sendable {
    private(set) var port: Int
    let directory: String
    let binary: String
    let arguments: [String]
    // Only touched by the test that owns the process, one call at a time.
    private var process: ChildProcess?

    var url: RedisURL { RedisURL(endpoint: .tcp(host: "127.0.0.1", port: port)) }
    var socketPath: String { directory + "/redis.sock" }

    /// Starts a server; `arguments` are extra redis-server options.
    init(arguments: [String] = []) async throws {
        binary = try TestServices.redisServer()
        port = try freeLoopbackPort()
        var template = Array("/tmp/relay-redis-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
        directory = String(cString: made)
        self.arguments = arguments
        // Other processes on this machine pick ports too: on a lost race, take another.
        var attempts = 0
        while true {
            do {
                try await start()
                return
            } catch let error as StartFailure {
                attempts += 1
                if attempts == 5 {
                    destroy()
                    throw TestFailure(error.description)
                }
                port = try freeLoopbackPort()
            } catch {
                destroy()
                throw error
            }
        }
    }

    /// The server exited at start (typically: its port was taken meanwhile).
    private struct StartFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    func start() async throws {
        let started = try ChildProcess.launch(
            executable: binary,
            arguments: [
                "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                directory, "--unixsocket", socketPath, "--unixsocketperm", "700", "--logfile", directory + "/redis.log",
            ] + arguments)
        process = started
        do {
            try await waitUntilAccepting(port: port, timeout: .seconds(5), process: started)
        } catch let exited as ChildProcessExited {
            process = nil
            throw StartFailure(description: "redis-server exited at start (status \(exited.status)): \(logTail())")
        } catch {
            stop()
            throw error
        }
    }

    /// The end of the server's log, for a failure message.
    private func logTail() -> String {
        let descriptor = open(directory + "/redis.log", O_RDONLY)
        guard descriptor >= 0 else { return "no log" }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 64 * 1024)
        let count = read(descriptor, &bytes, bytes.count)
        guard count > 0 else { return "empty log" }
        return String(decoding: bytes[max(0, count - 600)..<count], as: UTF8.self)
    }

    /// Kills the server at once (a crash, not a graceful shutdown) and reaps it.
    func stop() {
        process?.terminateIfRunning()
        process = nil
    }

    /// Stops the server and removes its directory.
    func destroy() {
        stop()
        for name in ["redis.log", "redis.sock", "dump.rdb"] { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    /// Runs `body` with a fresh server and always destroys it.
    static func with(arguments: [String] = [], _ body: (RedisServerProcess) async throws -> Void) async throws {
        let server = try await RedisServerProcess(arguments: arguments)
        do {
            try await body(server)
        } catch {
            server.destroy()
            throw error
        }
        server.destroy()
    }
}

/// Availability changes as the connection reported them.
final class AvailabilityLog: Sendable {
    private let events = Mutex<[Bool]>([])

    var callback: @Sendable (Bool) -> Void {
        { [self] available in events.withLock { $0.append(available) } }
    }

    var values: [Bool] { events.withLock { $0 } }
}

extension RedisError {
    /// The kind of a thrown error, or nil when it is not a `RedisError`.
    static func kind(of error: any Error) -> Kind? { (error as? RedisError)?.kind }
}

/// Sample records.
enum Records {
    static func plain(_ id: String = "session-0123456789", joinToken: StoredToken = "join-token-0123456789") -> SessionRecord {
        SessionRecord(
            sessionID: id, joinToken: joinToken, joinTokenExpiresAtMillis: 10_000,
            desktopSessionToken: "desktop-token-0123456789", relayWebSocketURL: "ws://localhost:8787/ws",
            idleTimeoutSeconds: 1800, createdAtMillis: 1_000, lastActivityAtMillis: 1_000)
    }

    static func paired(_ id: String = "session-0123456789") -> SessionRecord {
        var record = plain(id)
        record.joinTokenUsedAtMillis = 2_000
        record.devices["dev_0123456789ab"] = DeviceRecord(
            deviceID: "dev_0123456789ab", currentToken: "device-token-0123456789",
            retiredTokens: [RetiredToken(token: "retired-token-0123456789", expiresAtMillis: 40_000)], name: "Phone",
            joinedAtMillis: 2_000, lastSeenAtMillis: 3_000)
        return record
    }
}

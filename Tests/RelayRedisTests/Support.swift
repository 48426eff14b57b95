// Fixtures: the shared test Redis, private redis-server processes, unique key prefixes, polling.

import RelayCore
import Synchronization
import Testing

@testable import RelayRedis

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A test precondition that is not met; thrown so the test fails with this message.
struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}

enum TestRedis {
    /// The shared Redis every test that needs no restart uses (`RELAY_TEST_REDIS_URL`).
    static func url() throws -> RedisURL {
        guard let value = getenv("RELAY_TEST_REDIS_URL").map({ String(cString: $0) }), !value.isEmpty else {
            throw TestSetupError(
                description: "RELAY_TEST_REDIS_URL is not set. The Redis tests need a real redis-server: start one "
                    + "(redis-server --port 16379 --save '' --appendonly no --daemonize yes) and export "
                    + "RELAY_TEST_REDIS_URL=redis://127.0.0.1:16379 RELAY_TEST_REDIS_SERVER=$(command -v redis-server)")
        }
        return try RedisURL(parsing: value)
    }

    /// The redis-server binary for tests that start and stop their own server
    /// (`RELAY_TEST_REDIS_SERVER`).
    static func serverBinary() throws -> String {
        guard let value = getenv("RELAY_TEST_REDIS_SERVER").map({ String(cString: $0) }), !value.isEmpty else {
            throw TestSetupError(
                description: "RELAY_TEST_REDIS_SERVER is not set. Tests that restart Redis start their own "
                    + "redis-server: export RELAY_TEST_REDIS_SERVER=$(command -v redis-server)")
        }
        guard access(value, X_OK) == 0 else {
            throw TestSetupError(description: "RELAY_TEST_REDIS_SERVER=\(value) is not an executable file")
        }
        return value
    }

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
            throw TestSetupError(description: "cannot connect to the test Redis at \(url) within 5 s")
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
    private var pid: pid_t = 0

    var url: RedisURL { RedisURL(endpoint: .tcp(host: "127.0.0.1", port: port)) }
    var socketPath: String { directory + "/redis.sock" }

    /// Starts a server; `arguments` are extra redis-server options.
    init(arguments: [String] = []) throws {
        binary = try TestRedis.serverBinary()
        port = try Self.freePort()
        var template = Array("/tmp/relay-redis-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestSetupError(description: "mkdtemp failed") }
        directory = String(cString: made)
        self.arguments = arguments
        // Other processes on this machine pick ports too: on a lost race, take another.
        var attempts = 0
        while true {
            do {
                try start()
                return
            } catch let error as StartFailure {
                attempts += 1
                if attempts == 5 {
                    destroy()
                    throw TestSetupError(description: error.description)
                }
                port = try Self.freePort()
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

    /// Starts the server (again) on the same port.
    func start() throws {
        let argv =
            [
                binary, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                directory, "--unixsocket", socketPath, "--unixsocketperm", "700", "--logfile", directory + "/redis.log",
            ] + arguments
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArguments.append(nil)
        defer { for argument in cArguments { free(argument) } }
        var spawned: pid_t = 0
        let result = posix_spawn(&spawned, binary, nil, nil, cArguments, environ)
        guard result == 0 else { throw TestSetupError(description: "cannot start \(binary): error \(result)") }
        pid = spawned
        // Ready once it accepts connections.
        let deadline = monotonicNanoseconds() + 5_000_000_000
        while monotonicNanoseconds() < deadline {
            if Self.accepts(port: port) { return }
            var status: Int32 = 0
            if waitpid(spawned, &status, WNOHANG) == spawned {
                pid = 0
                throw StartFailure(description: "redis-server exited at start (status \(status)): \(logTail())")
            }
            usleep(10_000)
        }
        stop()
        throw TestSetupError(description: "redis-server did not listen on port \(port) within 5 s")
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
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
    }

    /// Stops the server and removes its directory.
    func destroy() {
        stop()
        for name in ["redis.log", "redis.sock", "dump.rdb"] { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    /// Runs `body` with a fresh server and always destroys it.
    static func with(arguments: [String] = [], _ body: (RedisServerProcess) async throws -> Void) async throws {
        let server = try RedisServerProcess(arguments: arguments)
        do {
            try await body(server)
        } catch {
            server.destroy()
            throw error
        }
        server.destroy()
    }

    /// A loopback port nothing listens on, below Linux's ephemeral range (32768–60999): a port
    /// the kernel hands out could become the local port of some outgoing connection (every
    /// test's Redis client makes them) while the server is down between a stop and a restart.
    static func freePort() throws -> Int {
        for _ in 0..<100 {
            let port = Int.random(in: 20_000..<32_000)
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw TestSetupError(description: "socket() failed") }
            defer { close(descriptor) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return port }
        }
        throw TestSetupError(description: "no free loopback port in 20000-32000")
    }

    private static func accepts(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
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

/// Polls `condition` every 10 ms until it holds; false if `timeout` passes first.
func eventually(timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

extension RedisError {
    /// The kind of a thrown error, or nil when it is not a `RedisError`.
    static func kind(of error: any Error) -> Kind? { (error as? RedisError)?.kind }
}

/// Sample records.
enum Records {
    static func plain(_ id: String = "session-0123456789", joinToken: String = "join-token-0123456789") -> SessionRecord {
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

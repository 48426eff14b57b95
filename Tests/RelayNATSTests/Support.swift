// Fixtures: the shared test NATS server, private nats-server processes, started buses, polling.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CNats
import RelayCore
import RelayProtocol
import Synchronization
import Testing

@testable import RelayNATS

/// A test precondition that is not met; thrown so the test fails with this message.
struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}

enum TestNATS {
    /// A secret of the length production requires.
    static let secret = "relay-nats-test-secret-0123456789abcdef"

    /// The shared server every test that needs no restart uses (`RELAY_TEST_NATS_URL`).
    static func url() throws -> String {
        guard let value = environment("RELAY_TEST_NATS_URL") else {
            throw TestSetupError(
                description: "RELAY_TEST_NATS_URL is not set. The NATS tests need a real nats-server: start one "
                    + "(nats-server -a 127.0.0.1 -p 14222 &) and export RELAY_TEST_NATS_URL=nats://127.0.0.1:14222 "
                    + "RELAY_TEST_NATS_SERVER=$(command -v nats-server)")
        }
        return value
    }

    /// The nats-server binary, for tests that start and stop their own server (`RELAY_TEST_NATS_SERVER`).
    static func serverBinary() throws -> String {
        guard let value = environment("RELAY_TEST_NATS_SERVER") else {
            throw TestSetupError(
                description: "RELAY_TEST_NATS_SERVER is not set. Tests that restart NATS start their own "
                    + "nats-server: export RELAY_TEST_NATS_SERVER=$(command -v nats-server)")
        }
        guard access(value, X_OK) == 0 else {
            throw TestSetupError(description: "RELAY_TEST_NATS_SERVER=\(value) is not an executable file")
        }
        return value
    }

    /// A subject prefix no other test uses.
    static func uniquePrefix() -> String {
        "relaytest.\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
    }

    private static func environment(_ name: String) -> String? {
        guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else { return nil }
        return value
    }
}

/// A started bus and what it has been given: envelopes and connectivity changes.
final class Node: Sendable {
    let bus: NATSClusterBus
    private let inbox = Mutex<[BusEnvelope]>([])
    private let connectivityLog = Mutex<[Bool]>([])

    private init(bus: NATSClusterBus) { self.bus = bus }

    /// Starts a bus on `url` (the shared server when nil), signed with `secret` unless it is nil.
    static func start(
        url: String? = nil, prefix: String, secret: String? = TestNATS.secret, previousSecret: String? = nil,
        tlsCAFile: String? = nil
    ) async throws -> Node {
        let configuration = try NATSClusterBusConfiguration(
            servers: NATSServerList(parsing: url ?? TestNATS.url()), subjectPrefix: prefix, secret: secret,
            previousSecret: previousSecret, tlsCAFile: tlsCAFile, reconnectWaitMillis: 50, reconnectJitterMillis: 50)
        let node = Node(bus: NATSClusterBus(configuration: configuration))
        try await node.bus.start(
            handler: { [node] envelope in node.inbox.withLock { $0.append(envelope) } },
            connectivity: { [node] up in node.connectivityLog.withLock { $0.append(up) } })
        return node
    }

    var received: [BusEnvelope] { inbox.withLock { $0 } }
    var connectivity: [Bool] { connectivityLog.withLock { $0 } }

    /// Payloads received, as text.
    var payloads: [String] { received.map { String(decoding: $0.payload, as: UTF8.self) } }

    /// Subscribes to `sessionID` and waits until the server has the subscription, as the core does
    /// before it announces a socket.
    func subscribe(_ sessionID: String) async {
        bus.setSubscribed(true, sessionID: sessionID)
        await bus.confirmSubscriptions()
    }

    /// An envelope as the core would publish it from this node.
    func envelope(
        _ target: BusTarget = .desktop, session: String, payload: String, deviceID: String? = nil
    ) -> BusEnvelope {
        BusEnvelope(
            sessionID: session, sourceInstanceID: bus.instanceID, target: target, targetDeviceID: deviceID,
            payload: Array(payload.utf8), issuedAtMillis: wallClockMillis(), nonce: Identifiers.shortID())
    }
}

/// Starts `count` buses on one prefix, runs `body`, and always shuts them down.
func withNodes(
    _ count: Int, url: String? = nil, secret: String? = TestNATS.secret, _ body: ([Node]) async throws -> Void
) async throws {
    let prefix = TestNATS.uniquePrefix()
    var nodes: [Node] = []
    do {
        for _ in 0..<count { nodes.append(try await Node.start(url: url, prefix: prefix, secret: secret)) }
        // Every node's control subscription is in effect at the server before the test publishes.
        for node in nodes { _ = await node.bus.flush() }
        try await body(nodes)
    } catch {
        for node in nodes { await node.bus.shutdown() }
        throw error
    }
    for node in nodes { await node.bus.shutdown() }
}

/// A nats-server this test started on a free loopback port.
final class NATSServerProcess: @unchecked Sendable {
    let port: Int
    let binary: String
    let arguments: [String]
    // Only touched by the test that owns the process, one call at a time.
    private var pid: pid_t = 0

    var url: String { "nats://127.0.0.1:\(port)" }

    /// Picks a port (unless given); `start` runs the server there with `arguments` added.
    init(port: Int? = nil, arguments: [String] = []) throws {
        binary = try TestNATS.serverBinary()
        self.port = try port ?? Self.freePort()
        self.arguments = arguments
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    func start() async throws {
        pid = try spawn([binary, "-a", "127.0.0.1", "-p", String(port)] + arguments)
        let accepting = await eventually(timeout: .seconds(5)) { Self.accepts(port: self.port) }
        guard accepting else {
            stop()
            throw TestSetupError(description: "nats-server did not listen on port \(port) within 5 s")
        }
    }

    /// Kills the server at once (a crash, not a graceful shutdown) and reaps it.
    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
    }

    /// Runs `body` with a server that is not started yet, and always stops it.
    static func with(
        port: Int? = nil, arguments: [String] = [], _ body: (NATSServerProcess) async throws -> Void
    ) async throws {
        let server = try NATSServerProcess(port: port, arguments: arguments)
        do {
            try await body(server)
        } catch {
            server.stop()
            throw error
        }
        server.stop()
    }

    /// A loopback port nothing listens on, below the kernel's ephemeral range: a client that
    /// keeps connecting to a port in that range while no server is there can connect to itself
    /// (TCP simultaneous open) and then hold the port the server is about to bind.
    static func freePort() throws -> Int {
        let ephemeralStart = ephemeralPortRangeStart()
        guard ephemeralStart > 20_100 else { throw TestSetupError(description: "no port range below \(ephemeralStart) to pick from") }
        for _ in 0..<100 {
            let port = Int.random(in: 20_000..<ephemeralStart)
            if canBind(port: port) { return port }
        }
        throw TestSetupError(description: "no free port found below \(ephemeralStart)")
    }

    private static func ephemeralPortRangeStart() -> Int {
        guard let file = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r") else { return 32_768 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, Int32(line.count), file) != nil else { return 32_768 }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32_768
    }

    private static func canBind(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func accepts(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }
}

/// Starts `argv` (a path and its arguments) with output discarded; returns its pid.
func spawn(_ argv: [String]) throws -> pid_t {
    var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
    cArguments.append(nil)
    defer { for argument in cArguments { free(argument) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    // The test process ignores or blocks some signals; a child starts with the defaults.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var unblocked = sigset_t()
    sigemptyset(&unblocked)
    posix_spawnattr_setsigmask(&attributes, &unblocked)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    var pid: pid_t = 0
    let result = posix_spawnp(&pid, argv[0], &actions, &attributes, cArguments, environ)
    guard result == 0 else { throw TestSetupError(description: "cannot start \(argv[0]): error \(result)") }
    return pid
}

/// Runs `argv` to completion (polling, so no cooperative thread blocks); throws unless it exits 0.
func run(_ argv: [String], timeout: Duration = .seconds(30)) async throws {
    let pid = try spawn(argv)
    let deadline = ContinuousClock.now + timeout
    var status: Int32 = 0
    while waitpid(pid, &status, WNOHANG) == 0 {
        guard ContinuousClock.now < deadline else {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            throw TestSetupError(description: "\(argv[0]) did not finish within \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
    guard status == 0 else { throw TestSetupError(description: "\(argv.joined(separator: " ")) failed with status \(status)") }
}

/// A self-signed certificate for 127.0.0.1 and localhost (also its own CA) and its key, made with
/// the `openssl` command in a fresh temporary directory.
struct TestCertificate {
    let directory: String
    var certificate: String { directory + "/cert.pem" }
    var key: String { directory + "/key.pem" }

    static func make() async throws -> TestCertificate {
        var template = Array("/tmp/relay-nats-tls-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestSetupError(description: "mkdtemp failed") }
        let certificate = TestCertificate(directory: String(cString: made))
        guard access("/usr/bin/openssl", X_OK) == 0 || access("/usr/local/bin/openssl", X_OK) == 0 else {
            throw TestSetupError(description: "the TLS test makes its certificate with the openssl command: apt-get install openssl")
        }
        try await run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", certificate.key, "-out", certificate.certificate, "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        return certificate
    }

    func remove() {
        unlink(certificate)
        unlink(key)
        rmdir(directory)
    }
}

/// Publishes `messages` to `subject` over a plain libnats connection of its own, as any client
/// of the server could, on a thread of its own (libnats calls block).
func rawPublish(url: String, subject: String, _ messages: [[UInt8]]) async throws {
    try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
        let started = startThread(name: "test-raw-pub") {
            defer { nats_ReleaseThreadMemory() }
            var connection: OpaquePointer?
            guard natsConnection_ConnectTo(&connection, url) == NATS_OK, let connection else {
                done.resume(throwing: TestSetupError(description: "raw connection to \(url) failed"))
                return
            }
            defer { natsConnection_Destroy(connection) }
            for message in messages {
                let status = message.withUnsafeBytes {
                    natsConnection_Publish(connection, subject, $0.baseAddress, Int32($0.count))
                }
                guard status == NATS_OK else {
                    done.resume(throwing: TestSetupError(description: "raw publish failed: \(statusText(status))"))
                    return
                }
            }
            guard natsConnection_FlushTimeout(connection, 2_000) == NATS_OK else {
                done.resume(throwing: TestSetupError(description: "raw flush failed"))
                return
            }
            done.resume()
        }
        if !started { done.resume(throwing: TestSetupError(description: "cannot start a thread")) }
    }
}

/// Polls `condition` every 10 ms until it holds; false if `timeout` passes first.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Gives in-flight messages time to arrive before asserting that something did not.
func settle() async {
    try? await Task.sleep(for: .milliseconds(300))
}

// Fixtures: the shared test NATS server, private nats-server processes, started buses, settling.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CNats
import RelayCore
import RelayProtocol
import RelayLocalCluster
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayNATS

enum TestNATS {
    /// A secret of the length production requires.
    static let secret = "relay-nats-test-secret-0123456789abcdef"

    /// The shared server every test that needs no restart uses (`RELAY_TEST_NATS_URL`).
    static func url() throws -> String { try TestServices.natsURL() }

    /// A subject prefix no other test uses.
    static func uniquePrefix() -> String {
        "relaytest.\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
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
    private var process: ChildProcess?

    var url: String { "nats://127.0.0.1:\(port)" }

    /// Picks a port (unless given); `start` runs the server there with `arguments` added.
    init(port: Int? = nil, arguments: [String] = []) throws {
        binary = try TestServices.natsServer()
        self.port = try port ?? freeLoopbackPort()
        self.arguments = arguments
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    func start() async throws {
        let started = try ChildProcess.launch(
            executable: binary, arguments: ["-a", "127.0.0.1", "-p", String(port)] + arguments)
        process = started
        do {
            try await waitUntilAccepting(port: port, timeout: .seconds(5), process: started)
        } catch {
            stop()
            throw TestFailure("nats-server did not start on port \(port): \(error); it wrote: \(started.standardError.suffix(600))")
        }
    }

    /// Kills the server at once (a crash, not a graceful shutdown) and reaps it.
    func stop() {
        process?.terminateIfRunning()
        process = nil
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
}

/// Runs `argv` (a program, looked up in PATH, and its arguments) to completion, polling so no
/// cooperative thread blocks; throws unless it exits 0.
func run(_ argv: [String], timeout: Duration = .seconds(30)) async throws {
    let process = try ChildProcess.launch(executable: argv[0], arguments: Array(argv.dropFirst()))
    defer { process.terminateIfRunning() }
    let status = try await process.waitForExit(timeout: timeout)
    guard status == 0 else {
        throw TestFailure("\(argv.joined(separator: " ")) failed with status \(status): \(process.standardError.suffix(600))")
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost (also its own CA) and its key, made with
/// the `openssl` command in a fresh temporary directory.
struct TestCertificate {
    let directory: String
    var certificate: String { directory + "/cert.pem" }
    var key: String { directory + "/key.pem" }

    static func make() async throws -> TestCertificate {
        var template = Array("/tmp/relay-nats-tls-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
        let certificate = TestCertificate(directory: String(cString: made))
        guard access("/usr/bin/openssl", X_OK) == 0 || access("/usr/local/bin/openssl", X_OK) == 0 else {
            throw TestFailure("the TLS test makes its certificate with the openssl command: apt-get install openssl")
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
                done.resume(throwing: TestFailure("raw connection to \(url) failed"))
                return
            }
            defer { natsConnection_Destroy(connection) }
            for message in messages {
                let status = message.withUnsafeBytes {
                    natsConnection_Publish(connection, subject, $0.baseAddress, Int32($0.count))
                }
                guard status == NATS_OK else {
                    done.resume(throwing: TestFailure("raw publish failed: \(statusText(status))"))
                    return
                }
            }
            guard natsConnection_FlushTimeout(connection, 2_000) == NATS_OK else {
                done.resume(throwing: TestFailure("raw flush failed"))
                return
            }
            done.resume()
        }
        if !started { done.resume(throwing: TestFailure("cannot start a thread")) }
    }
}


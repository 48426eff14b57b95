import Foundation
import RelayClient
import RelayTestSupport
import Synchronization

/// A redis-server or nats-server of a test's own, on a free loopback port, for tests that stop
/// and restart it. Its data directory lives as long as the object.
final class DependencyServer: Sendable {
    enum Kind: Sendable { case redis(appendOnly: Bool), nats }

    let kind: Kind
    let port: Int
    let directory: String
    private let process = Mutex<ChildProcess?>(nil)

    var url: String {
        switch kind {
        case .redis: "redis://127.0.0.1:\(port)"
        case .nats: "nats://127.0.0.1:\(port)"
        }
    }

    init(_ kind: Kind) throws {
        self.kind = kind
        self.port = try freeLoopbackPort()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("relay-dep-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        process.withLock { $0?.terminateIfRunning() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts the server and waits until it accepts connections.
    func start() async throws {
        let launched: ChildProcess
        switch kind {
        case .redis(let appendOnly):
            launched = try ChildProcess.launch(
                executable: try TestServices.redisServer(),
                arguments: [
                    "--bind", "127.0.0.1", "--port", "\(port)", "--dir", directory, "--save", "",
                    "--appendonly", appendOnly ? "yes" : "no", "--appendfsync", "always",
                ],
                environment: [:])
        case .nats:
            launched = try ChildProcess.launch(
                executable: try TestServices.natsServer(), arguments: ["-a", "127.0.0.1", "-p", "\(port)"], environment: [:])
        }
        process.withLock { $0 = launched }
        try await waitUntilAccepting(port: port, process: launched)
    }

    /// Stops the server: gracefully (SIGTERM, Redis writes its append-only file) or with SIGKILL.
    func stop(graceful: Bool = true) async throws {
        guard let running = process.withLock({ $0 }) else { return }
        running.send(graceful ? SIGTERM : SIGKILL)
        _ = try await running.waitForExit(timeout: .seconds(10))
        process.withLock { $0 = nil }
    }
}

/// Relay processes, each on its own loopback port, sharing one Redis and one NATS under a key
/// prefix and subject prefix of their own, so tests never see each other's traffic.
final class RelayCluster: Sendable {
    struct Node: Sendable {
        let port: Int
        let process: ChildProcess
    }

    let environment: [String: String]
    private let nodes: Mutex<[Node]>

    private init(environment: [String: String], nodes: [Node]) {
        self.environment = environment
        self.nodes = Mutex(nodes)
    }

    /// Starts `count` nodes against `redisURL` and `natsURL` (default: the suite's servers) and
    /// waits until every one is ready (both dependencies answer).
    static func start(
        count: Int, redisURL: String? = nil, natsURL: String? = nil, _ configure: (inout [String: String]) -> Void = { _ in }
    ) async throws -> RelayCluster {
        let tag = UUID().uuidString.prefix(8).lowercased()
        var environment = [
            "HOST": "127.0.0.1", "ALLOWED_ORIGINS": allowedOrigin,
            "REDIS_URL": try redisURL ?? TestServices.redisURL(), "REDIS_KEY_PREFIX": "relaytest:\(tag)",
            "NATS_URL": try natsURL ?? TestServices.natsURL(), "NATS_SUBJECT_PREFIX": "relaytest.\(tag)",
            "NATS_HMAC_SECRET": "cluster-test-secret-0123456789abcdef", "DRAIN_PERIOD_MS": "300",
        ]
        configure(&environment)
        let cluster = RelayCluster(environment: environment, nodes: [])
        do {
            for _ in 0..<count {
                let node = try cluster.launch(port: try freeLoopbackPort())
                cluster.nodes.withLock { $0.append(node) }
            }
            for index in 0..<count { try await cluster.waitUntilReady(index) }
        } catch {
            cluster.killAll()
            throw error
        }
        return cluster
    }

    private func launch(port: Int) throws -> Node {
        var env = environment
        env["PORT"] = "\(port)"
        env["PUBLIC_BASE_URL"] = "http://127.0.0.1:\(port)"
        return Node(port: port, process: try RelayProcess.launch(environment: env))
    }

    var count: Int { nodes.withLock { $0.count } }
    func port(_ index: Int) -> Int { nodes.withLock { $0[index].port } }
    func baseURL(_ index: Int) -> String { "http://127.0.0.1:\(port(index))" }
    func wsURL(_ index: Int) -> String { "ws://127.0.0.1:\(port(index))/ws" }

    /// Waits until the node's `/readyz` says ready.
    func waitUntilReady(_ index: Int, timeout: Duration = .seconds(20)) async throws {
        let node = nodes.withLock { $0[index] }
        let http = RelayHTTPClient(baseURL: baseURL(index))
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard node.process.isRunning else {
                throw TestFailure("relay node \(index) exited: \(node.process.standardError.suffix(2000))")
            }
            if (try? await http.get("/readyz", timeout: .seconds(1)))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("relay node \(index) not ready after \(timeout): \(node.process.standardError.suffix(2000))")
    }

    /// `kill -9`: the node vanishes without draining.
    func kill(_ index: Int) async throws {
        let node = nodes.withLock { $0[index] }
        node.process.send(SIGKILL)
        _ = try await node.process.waitForExit(timeout: .seconds(10))
    }

    /// SIGTERM and wait for the drain to finish; returns the exit status.
    @discardableResult
    func stop(_ index: Int) async throws -> Int32 {
        let node = nodes.withLock { $0[index] }
        node.process.send(SIGTERM)
        return try await node.process.waitForExit(timeout: .seconds(15))
    }

    /// Starts a stopped node again on the same port and waits until it is ready.
    func restart(_ index: Int) async throws {
        let port = port(index)
        let node = try launch(port: port)
        nodes.withLock { $0[index] = node }
        try await waitUntilReady(index)
    }

    /// The node's Prometheus exposition.
    func prometheus(_ index: Int) async throws -> String {
        let response = try await RelayHTTPClient(baseURL: baseURL(index))
            .get("/metricsz", headers: [("Accept", "text/plain")], timeout: .seconds(5))
        return String(decoding: response.body, as: UTF8.self)
    }

    /// The node's log output so far (stderr and stdout).
    func logs(_ index: Int) -> String {
        let node = nodes.withLock { $0[index] }
        return node.process.standardError + node.process.standardOutput
    }

    func killAll() {
        for node in nodes.withLock({ $0 }) { node.process.terminateIfRunning() }
    }
}

/// Runs `body` with a started cluster and kills every node afterwards, whatever happens.
func withRelayCluster(
    count: Int, redisURL: String? = nil, natsURL: String? = nil, _ configure: (inout [String: String]) -> Void = { _ in },
    _ body: (RelayCluster) async throws -> Void
) async throws {
    let cluster = try await RelayCluster.start(count: count, redisURL: redisURL, natsURL: natsURL, configure)
    defer { cluster.killAll() }
    try await body(cluster)
}

/// The value of a Prometheus sample such as `relay_nats_rejected_total{reason="signature"}`, 0 when absent.
func sampleValue(_ exposition: String, _ series: String) -> Double {
    for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1).trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return 0
}

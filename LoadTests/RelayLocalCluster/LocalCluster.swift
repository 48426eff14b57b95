// Relay nodes sharing one Redis and one NATS, on loopback, to load, kill and restart.

import Foundation
import RelayTestClient
import Synchronization

/// `relay` processes, each on its own loopback port, in cluster mode over one Redis and one NATS.
///
/// Every cluster has a Redis key prefix, a NATS subject prefix and a NATS HMAC secret of its own,
/// so clusters sharing servers never see each other's state or traffic. Redis and NATS are either
/// servers already running (`Dependency.external`) or servers the cluster starts on free ports and
/// owns (`Dependency.local`): those are stopped by `shutdown()` and `killAll()`, and reachable as
/// `redisServer` and `natsServer` for a drill to stop and restart.
///
/// Node indexes are stable: `restart(i)` replaces node `i` by a new process on the same port.
package final class LocalCluster: Sendable {
    /// Where a cluster's Redis or NATS comes from.
    package enum Dependency: Sendable {
        /// A server already running at `url` (`redis://…`, `nats://…`); the cluster never stops it.
        case external(url: String)
        /// A server the cluster starts on a free loopback port and stops at `shutdown()`.
        ///
        /// - executable: the redis-server or nats-server binary; nil looks it up with
        ///   `LocalDependencyServer.findExecutable`.
        /// - appendOnly: for Redis, persistence across restarts (see `LocalDependencyServer.Kind`);
        ///   ignored for NATS.
        case local(executable: String? = nil, appendOnly: Bool = false)
    }

    /// The relay executable every node runs.
    package let executable: String
    /// The environment every node shares; each node adds its `PORT` and `PUBLIC_BASE_URL`.
    package let environment: [String: String]
    /// The Redis the nodes use (`REDIS_URL`).
    package let redisURL: String
    /// The NATS the nodes use (`NATS_URL`).
    package let natsURL: String
    /// The cluster's `REDIS_KEY_PREFIX`.
    package let keyPrefix: String
    /// The cluster's `NATS_SUBJECT_PREFIX`.
    package let subjectPrefix: String
    /// The redis-server the cluster started, nil for an external one.
    package let redisServer: LocalDependencyServer?
    /// The nats-server the cluster started, nil for an external one.
    package let natsServer: LocalDependencyServer?
    /// How the harness checks the nodes' certificate when they serve TLS (`TLS_CERT_FILE`).
    package let clientTLS: RelayTLS
    private let nodes: Mutex<[LocalRelayNode]>

    private init(
        executable: String, environment: [String: String], redisURL: String, natsURL: String, keyPrefix: String,
        subjectPrefix: String, redisServer: LocalDependencyServer?, natsServer: LocalDependencyServer?, clientTLS: RelayTLS
    ) {
        self.clientTLS = clientTLS
        self.executable = executable
        self.environment = environment
        self.redisURL = redisURL
        self.natsURL = natsURL
        self.keyPrefix = keyPrefix
        self.subjectPrefix = subjectPrefix
        self.redisServer = redisServer
        self.natsServer = natsServer
        self.nodes = Mutex([])
    }

    /// Starts Redis and NATS if the cluster owns them, then `nodes` relay nodes on free loopback
    /// ports, and waits until every node is ready (both dependencies answer). On any failure
    /// everything started is killed before the error is thrown.
    ///
    /// - Parameters:
    ///   - nodes: how many relay nodes.
    ///   - redis: the Redis to use or start.
    ///   - nats: the NATS to use or start.
    ///   - environment: relay configuration for every node, applied over the cluster's own
    ///     (`HOST=127.0.0.1`, `REDIS_URL`, `NATS_URL`, `REDIS_KEY_PREFIX=<prefix>:<tag>`,
    ///     `NATS_SUBJECT_PREFIX=<prefix>.<tag>`, a random 64-character `NATS_HMAC_SECRET`).
    ///     `PORT` and `PUBLIC_BASE_URL` are always the node's own.
    ///   - prefix: the first part of the key and subject prefixes; the tag is random.
    ///   - executable: the relay binary; nil means `LocalRelayNode.defaultExecutable()`.
    ///   - readyTimeout: how long each node may take to become ready.
    package static func start(
        nodes count: Int, redis: Dependency, nats: Dependency, environment: [String: String] = [:],
        prefix: String = "relaylocal", executable: String? = nil, readyTimeout: Duration = .seconds(20),
        clientTLS: RelayTLS = .system
    ) async throws -> LocalCluster {
        let executable = try executable ?? LocalRelayNode.defaultExecutable()
        let redisServer = try server(for: redis, kind: { .redis(appendOnly: $0) }, name: "redis-server")
        let natsServer = try server(for: nats, kind: { _ in .nats }, name: "nats-server")
        do {
            try await redisServer?.start()
            try await natsServer?.start()
        } catch {
            redisServer?.terminateIfRunning()
            natsServer?.terminateIfRunning()
            throw error
        }
        let redisURL = redisServer?.url ?? redis.externalURL ?? ""
        let natsURL = natsServer?.url ?? nats.externalURL ?? ""

        let tag = UUID().uuidString.prefix(8).lowercased()
        var shared = [
            "HOST": "127.0.0.1",
            "REDIS_URL": redisURL, "REDIS_KEY_PREFIX": "\(prefix):\(tag)",
            "NATS_URL": natsURL, "NATS_SUBJECT_PREFIX": "\(prefix).\(tag)",
            "NATS_HMAC_SECRET": randomSecret(),
        ]
        shared.merge(environment) { _, given in given }
        let cluster = LocalCluster(
            executable: executable, environment: shared, redisURL: shared["REDIS_URL"] ?? redisURL,
            natsURL: shared["NATS_URL"] ?? natsURL, keyPrefix: shared["REDIS_KEY_PREFIX"] ?? "",
            subjectPrefix: shared["NATS_SUBJECT_PREFIX"] ?? "", redisServer: redisServer, natsServer: natsServer,
            clientTLS: clientTLS)
        do {
            var ports: Set<Int> = []
            for _ in 0..<count {
                let node = try await cluster.launchOnFreePort(excluding: ports)
                ports.insert(node.port)
                cluster.nodes.withLock { $0.append(node) }
            }
            for index in 0..<count { try await cluster.waitUntilReady(index, timeout: readyTimeout) }
        } catch {
            cluster.killAll()
            throw error
        }
        return cluster
    }

    private static func server(
        for dependency: Dependency, kind: (Bool) -> LocalDependencyServer.Kind, name: String
    ) throws -> LocalDependencyServer? {
        guard case .local(let executable, let appendOnly) = dependency else { return nil }
        return try LocalDependencyServer(
            kind(appendOnly), executable: try executable ?? LocalDependencyServer.findExecutable(name))
    }

    /// 64 random hexadecimal digits.
    private static func randomSecret() -> String {
        let digits = Array("0123456789abcdef")
        return String((0..<64).map { _ in digits.randomElement()! })
    }

    /// Launches a node on a free port and waits until it serves HTTP. A free port can be taken by
    /// another process before the relay binds it (tests run clusters side by side): then another.
    private func launchOnFreePort(excluding ports: Set<Int>) async throws -> LocalRelayNode {
        var tried = ports
        for attempt in 1...5 {
            let port = try freeLoopbackPort(excluding: tried)
            tried.insert(port)
            let node = try launch(port: port)
            do {
                try await node.waitUntilHealthy()
                return node
            } catch where attempt < 5 && node.logs.contains("Address already in use") {
                continue
            } catch {
                node.process.terminateIfRunning()
                throw error
            }
        }
        throw LocalClusterError("no free loopback port for a relay node after 5 attempts")
    }

    private func launch(port: Int, overrides: [String: String] = [:]) throws -> LocalRelayNode {
        var env = environment.merging(overrides) { _, override in override }
        env["PUBLIC_BASE_URL"] = "\(env["TLS_CERT_FILE"] == nil ? "http" : "https")://127.0.0.1:\(port)"
        return try LocalRelayNode.launch(executable: executable, port: port, environment: env, clientTLS: clientTLS)
    }

    /// How many nodes the cluster has (stopped ones included).
    package var count: Int { nodes.withLock { $0.count } }
    /// Node `index` as it is now (after `restart(index)`, the new process).
    package func node(_ index: Int) -> LocalRelayNode { nodes.withLock { $0[index] } }
    /// Node `index`'s port; it never changes.
    package func port(_ index: Int) -> Int { node(index).port }
    /// `http://127.0.0.1:<port>` of node `index`.
    package func baseURL(_ index: Int) -> String { node(index).baseURL }
    /// `ws://127.0.0.1:<port>/ws` of node `index`.
    package func socketURL(_ index: Int) -> String { node(index).socketURL }
    /// The process id of node `index`'s current process.
    package func pid(_ index: Int) -> pid_t { node(index).pid }

    /// Waits until node `index`'s `/readyz` says ready.
    ///
    /// - Throws: `LocalClusterError` when it exits first or `timeout` passes.
    package func waitUntilReady(_ index: Int, timeout: Duration = .seconds(20)) async throws {
        do {
            try await node(index).waitUntilReady(timeout: timeout)
        } catch let error as LocalClusterError {
            throw LocalClusterError("node \(index): \(error)")
        }
    }

    /// `kill -9` node `index`: it vanishes without draining. Returns once it is reaped.
    package func kill(_ index: Int) async throws {
        try await node(index).kill()
    }

    /// SIGTERM node `index` and wait while it drains and exits.
    ///
    /// - Returns: the exit status (0 after a clean drain).
    @discardableResult
    package func stop(_ index: Int, timeout: Duration = .seconds(15)) async throws -> Int32 {
        try await node(index).stop(timeout: timeout)
    }

    /// Starts node `index` again on the same port and waits until it is ready. A node that still
    /// runs is stopped first (SIGTERM, up to `drainTimeout`).
    ///
    /// - Parameter overrides: variables that differ from the cluster's environment for the new
    ///   process, as a changed Secret does for a restarted pod (`NATS_HMAC_SECRET`, say); an empty
    ///   value unsets the variable for the relay.
    package func restart(
        _ index: Int, overrides: [String: String] = [:], drainTimeout: Duration = .seconds(15), readyTimeout: Duration = .seconds(20)
    ) async throws {
        let old = node(index)
        if old.isRunning { try await old.stop(timeout: drainTimeout) }
        let new = try launch(port: old.port, overrides: overrides)
        nodes.withLock { $0[index] = new }
        try await waitUntilReady(index, timeout: readyTimeout)
    }

    /// Restarts every node in turn, as a deployment would: SIGTERM node 0, wait for it to drain
    /// and exit, launch it again on the same port, wait until it is ready, run `afterEach(0)`;
    /// then node 1, and so on.
    ///
    /// - Parameters:
    ///   - drainTimeout: how long each node may take to exit after SIGTERM.
    ///   - readyTimeout: how long each new process may take to become ready.
    ///   - afterEach: called with the index of each node once it is ready again (to check traffic
    ///     between restarts, say).
    /// - Returns: each old process's exit status, by node index.
    @discardableResult
    package func rollingRestart(
        drainTimeout: Duration = .seconds(15), readyTimeout: Duration = .seconds(20),
        afterEach: (Int) async throws -> Void = { _ in }
    ) async throws -> [Int32] {
        var statuses: [Int32] = []
        for index in 0..<count {
            let old = node(index)
            statuses.append(try await old.stop(timeout: drainTimeout))
            try await restart(index, drainTimeout: drainTimeout, readyTimeout: readyTimeout)
            try await afterEach(index)
        }
        return statuses
    }

    /// Node `index`'s metrics in the Prometheus text format.
    package func prometheus(_ index: Int) async throws -> String {
        try await node(index).prometheus()
    }

    /// What node `index`'s current process logged so far (standard error, then standard output).
    package func logs(_ index: Int) -> String { node(index).logs }

    /// SIGKILLs every node, and the Redis and NATS the cluster owns, and reaps them, without
    /// suspending: for cleanup paths (`defer`).
    package func killAll() {
        for node in nodes.withLock({ $0 }) { node.process.terminateIfRunning() }
        redisServer?.terminateIfRunning()
        natsServer?.terminateIfRunning()
    }

    /// Stops every node gracefully (SIGTERM, all at once; SIGKILL for any still running after
    /// `drainTimeout`), then the Redis and NATS the cluster owns.
    ///
    /// - Returns: each node's exit status, by index (128 + 9 for one that had to be killed).
    @discardableResult
    package func shutdown(drainTimeout: Duration = .seconds(15)) async -> [Int32] {
        let current = nodes.withLock { $0 }
        for node in current { node.process.send(SIGTERM) }
        let deadline = ContinuousClock.now + drainTimeout
        var statuses: [Int32] = []
        for node in current {
            let remaining = max(deadline - ContinuousClock.now, .zero)
            if let status = try? await node.process.waitForExit(timeout: remaining) {
                statuses.append(status)
            } else {
                node.process.terminateIfRunning()
                statuses.append(node.process.reap() ?? 128 + SIGKILL)
            }
        }
        try? await natsServer?.stop()
        try? await redisServer?.stop()
        killAll()
        return statuses
    }
}

extension LocalCluster.Dependency {
    fileprivate var externalURL: String? {
        if case .external(let url) = self { url } else { nil }
    }
}

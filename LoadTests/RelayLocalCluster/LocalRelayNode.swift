// One `relay` process on a loopback port: launching, health and readiness, kill and graceful stop.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import RelayTestClient

/// The built `relay` executable run as a child process on 127.0.0.1, as an operator would run it.
///
/// A node is one process: after `kill()` or `stop()` it stays ended; launch a new node on the same
/// port to bring it back (`LocalCluster.restart` does that).
package final class LocalRelayNode: Sendable {
    /// The loopback port the node listens on.
    package let port: Int
    /// The process.
    package let process: ChildProcess
    /// The whole environment the process was started with.
    package let environment: [String: String]
    /// How clients check the node's certificate when it serves TLS (`TLS_CERT_FILE` set).
    package let clientTLS: RelayTLS

    /// The process id.
    package var pid: pid_t { process.pid }
    /// Whether the node serves TLS itself.
    package var servesTLS: Bool { environment["TLS_CERT_FILE"] != nil }
    /// `http://127.0.0.1:<port>` (`https` when the node serves TLS).
    package var baseURL: String { "\(servesTLS ? "https" : "http")://127.0.0.1:\(port)" }
    /// `ws://127.0.0.1:<port>/ws` (`wss` when the node serves TLS), the WebSocket endpoint.
    package var socketURL: String { "\(servesTLS ? "wss" : "ws")://127.0.0.1:\(port)/ws" }
    /// An HTTP client for `baseURL`.
    package var http: RelayHTTPClient { RelayHTTPClient(baseURL: baseURL, tls: clientTLS) }
    /// Whether the process has not ended yet.
    package var isRunning: Bool { process.isRunning }
    /// What the node logged so far: standard error, then standard output.
    package var logs: String { process.standardError + process.standardOutput }

    /// The `relay` executable to run: `RELAY_BINARY` when set, else `relay` beside the running
    /// executable (see ``siblingExecutable(named:overriddenBy:)``).
    ///
    /// - Throws: `LocalClusterError` when that file is not executable, saying how to fix it.
    package static func defaultExecutable() throws -> String {
        try siblingExecutable(named: "relay", overriddenBy: "RELAY_BINARY")
    }

    /// A product of this package to run: the path in the environment variable `variable` when
    /// set, else `name` in the directory of the running executable (`CommandLine.arguments[0]`, or
    /// `/proc/self/exe` when that is a bare name), which is where SwiftPM puts every product beside
    /// `relay-load` and the test bundle.
    ///
    /// - Throws: `LocalClusterError` when that file is not executable, saying how to fix it.
    package static func siblingExecutable(named name: String, overriddenBy variable: String) throws -> String {
        if let configured = getenv(variable).map({ String(cString: $0) }), !configured.isEmpty {
            guard access(configured, X_OK) == 0 else {
                throw LocalClusterError("\(variable)=\(configured) is not an executable file")
            }
            return configured
        }
        let running = CommandLine.arguments.first ?? ""
        let directory: String
        if running.contains("/") {
            directory = String(running[..<running.lastIndex(of: "/")!])
        } else if let resolved = selfExecutablePath(), resolved.contains("/") {
            directory = String(resolved[..<resolved.lastIndex(of: "/")!])
        } else {
            throw LocalClusterError("cannot tell where \(running) lives; set \(variable) to the \(name) executable")
        }
        let candidate = directory + "/" + name
        guard access(candidate, X_OK) == 0 else {
            throw LocalClusterError(
                "no \(name) executable at \(candidate): build it (swift build --product \(name), with the same "
                    + "configuration) or set \(variable) to its path")
        }
        return candidate
    }

    /// Starts `relay` listening on 127.0.0.1:`port`.
    ///
    /// The process gets exactly `environment`, with `PORT` set to `port` and, unless
    /// `environment` sets them, `HOST=127.0.0.1`, `PUBLIC_BASE_URL=http://127.0.0.1:<port>` and
    /// `LOG_LEVEL=warning`. It returns at once; `waitUntilHealthy` or `waitUntilReady` wait for
    /// the node.
    ///
    /// - Parameters:
    ///   - executable: the `relay` binary; nil means `defaultExecutable()`.
    ///   - port: the port to listen on, such as one from `freeLoopbackPort()`.
    ///   - arguments: command-line arguments (the relay reads its configuration from the
    ///     environment; this is for `--help` and the like).
    ///   - environment: the relay's configuration (`REDIS_URL`, `NATS_URL`, limits…).
    ///   - clientTLS: how the harness's own requests check the node's certificate, when the
    ///     environment sets `TLS_CERT_FILE`.
    /// - Throws: `LocalClusterError` when the executable is missing or cannot be started.
    package static func launch(
        executable: String? = nil, port: Int, arguments: [String] = [], environment: [String: String] = [:],
        clientTLS: RelayTLS = .system
    ) throws -> LocalRelayNode {
        var full = environment
        full["PORT"] = "\(port)"
        full["HOST"] = full["HOST"] ?? "127.0.0.1"
        let scheme = full["TLS_CERT_FILE"] == nil ? "http" : "https"
        full["PUBLIC_BASE_URL"] = full["PUBLIC_BASE_URL"] ?? "\(scheme)://127.0.0.1:\(port)"
        full["LOG_LEVEL"] = full["LOG_LEVEL"] ?? "warning"
        let process = try ChildProcess.launch(
            executable: try executable ?? defaultExecutable(), arguments: arguments, environment: full)
        return LocalRelayNode(port: port, process: process, environment: full, clientTLS: clientTLS)
    }

    private init(port: Int, process: ChildProcess, environment: [String: String], clientTLS: RelayTLS) {
        self.port = port
        self.process = process
        self.environment = environment
        self.clientTLS = clientTLS
    }

    /// Waits until `/healthz` answers 200 (the process is up and serving HTTP).
    ///
    /// - Throws: `LocalClusterError` when the process exits first or `timeout` passes; the message
    ///   ends with the node's last output.
    package func waitUntilHealthy(timeout: Duration = .seconds(10)) async throws {
        try await waitFor("/healthz", "healthy", timeout: timeout)
    }

    /// Waits until `/readyz` answers 200 (not draining, and in cluster mode both Redis and NATS
    /// answer).
    ///
    /// - Throws: `LocalClusterError` when the process exits first or `timeout` passes; the message
    ///   ends with the node's last output.
    package func waitUntilReady(timeout: Duration = .seconds(20)) async throws {
        try await waitFor("/readyz", "ready", timeout: timeout)
    }

    private func waitFor(_ path: String, _ state: String, timeout: Duration) async throws {
        let http = self.http
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = process.reap() {
                throw LocalClusterError("relay at \(baseURL) (pid \(pid)) exited with status \(status): \(logTail())")
            }
            if (try? await http.get(path, timeout: .seconds(1)))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LocalClusterError("relay at \(baseURL) (pid \(pid)) not \(state) after \(timeout): \(logTail())")
    }

    /// `kill -9`: the node vanishes without draining; returns once the process is reaped.
    package func kill() async throws {
        process.send(SIGKILL)
        _ = try await process.waitForExit(timeout: .seconds(10))
    }

    /// SIGTERM, then waits while the node drains its sockets and exits.
    ///
    /// - Parameter timeout: how long the drain may take (the node's `DRAIN_PERIOD_MS` plus a margin).
    /// - Returns: the exit status (0 after a clean drain; 128 + signal if a signal ended it).
    /// - Throws: `LocalClusterError` when it still runs after `timeout` (it is left running).
    @discardableResult
    package func stop(timeout: Duration = .seconds(15)) async throws -> Int32 {
        process.send(SIGTERM)
        return try await process.waitForExit(timeout: timeout)
    }

    /// The node's metrics in the Prometheus text format (`GET /metricsz`, `Accept: text/plain`).
    package func prometheus(timeout: Duration = .seconds(5)) async throws -> String {
        let response = try await http.get("/metricsz", headers: [("Accept", "text/plain")], timeout: timeout)
        return String(decoding: response.body, as: UTF8.self)
    }

    /// The last 2000 characters of standard error, for messages.
    private func logTail() -> String { String(process.standardError.suffix(2000)) }

    private static func selfExecutablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

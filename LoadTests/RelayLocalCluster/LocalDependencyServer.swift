// A redis-server or nats-server of our own on a free loopback port, to stop and restart at will.

import Foundation
import Synchronization

/// A redis-server or nats-server run as a child process on 127.0.0.1, in a data directory of its
/// own that lives as long as the object. The server is killed when the object goes away.
///
/// The port is picked at `init`; if the very first `start()` finds it taken meanwhile, the server
/// moves to another free port (up to five tries). From the first successful start on the port never
/// changes, so `url` stays valid across `stop()` and `start()`.
package final class LocalDependencyServer: Sendable {
    /// Which server, and how it is configured.
    package enum Kind: Sendable, Equatable {
        /// redis-server, RDB snapshots off. With `appendOnly`, every write is appended to the
        /// append-only file and fsynced (`--appendfsync always`), so a graceful or abrupt stop loses
        /// nothing; without it a restarted server starts empty.
        case redis(appendOnly: Bool)
        /// nats-server, core NATS only.
        case nats
        /// redis-server in Sentinel mode, monitoring the master at 127.0.0.1:`masterPort` under
        /// `masterName` with `quorum`, declaring it down after `downAfterMillis` without an answer.
        /// Its configuration file is written in the data directory (Sentinel rewrites it).
        case sentinel(masterName: String, masterPort: Int, quorum: Int, downAfterMillis: Int)
    }

    /// The server and its configuration.
    package let kind: Kind
    /// The server binary.
    package let executable: String
    /// Options added after the ones this type sets.
    package let arguments: [String]
    /// The server's data directory (Redis writes its append-only file here); removed with the object.
    package let directory: String
    private let state: Mutex<State>

    private struct State {
        var port: Int
        var process: ChildProcess?
        var everStarted = false
    }

    /// The loopback port the server listens (or will listen) on.
    package var port: Int { state.withLock { $0.port } }

    /// `redis://127.0.0.1:<port>` or `nats://127.0.0.1:<port>`.
    package var url: String {
        switch kind {
        case .redis, .sentinel: "redis://127.0.0.1:\(port)"
        case .nats: "nats://127.0.0.1:\(port)"
        }
    }

    /// Whether the server process runs.
    package var isRunning: Bool { state.withLock { $0.process?.isRunning ?? false } }

    /// The process while started (nil before `start()` and after `stop(graceful:)`).
    package var process: ChildProcess? { state.withLock { $0.process } }

    /// What the current process wrote so far (standard output, then standard error): Redis and
    /// NATS log there.
    package var logs: String {
        guard let process else { return "" }
        return process.standardOutput + process.standardError
    }

    /// Prepares a server (not started yet): picks a free port and creates the data directory.
    ///
    /// - Parameters:
    ///   - kind: redis (with or without append-only persistence) or nats.
    ///   - executable: the redis-server or nats-server binary, such as
    ///     `findExecutable("redis-server")` gives.
    ///   - arguments: extra server options, added last.
    /// - Throws: `LocalClusterError` when no port is free or the directory cannot be made.
    package init(_ kind: Kind, executable: String, arguments: [String] = []) throws {
        self.kind = kind
        self.executable = executable
        self.arguments = arguments
        let name: String =
            switch kind {
            case .redis: "redis"
            case .nats: "nats"
            case .sentinel: "sentinel"
            }
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("relay-\(name)-\(UUID().uuidString)").path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw LocalClusterError("cannot create \(directory): \(error)")
        }
        self.state = Mutex(State(port: try freeLoopbackPort()))
    }

    deinit {
        state.withLock { $0.process?.terminateIfRunning() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The path of the program `name` (such as `redis-server` or `nats-server`): the first
    /// executable file of that name in `PATH`, /usr/bin, /usr/sbin or /usr/local/bin.
    ///
    /// - Throws: `LocalClusterError` naming the Debian/Ubuntu package to install when it is missing.
    package static func findExecutable(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + name
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
                FileManager.default.isExecutableFile(atPath: candidate)
            {
                return candidate
            }
        }
        // Both servers are packaged under their own name on Debian and Ubuntu.
        throw LocalClusterError(
            "\(name) not found on PATH or in /usr/bin, /usr/sbin, /usr/local/bin: install the \(name) "
                + "package (apt-get install \(name)) or put it on PATH")
    }

    /// Starts the server and waits until it accepts connections. Does nothing if it runs.
    ///
    /// - Throws: `LocalClusterError` (with the server's output) when it exits at start or does not
    ///   accept connections within 10 s; the process is not left running.
    package func start() async throws {
        var attempts = 0
        while true {
            let (port, everStarted) = state.withLock { ($0.port, $0.everStarted) }
            if isRunning { return }
            let launched = try ChildProcess.launch(
                executable: executable, arguments: serverArguments(port: port) + arguments, environment: [:])
            state.withLock { $0.process = launched }
            do {
                try await waitUntilAccepting(port: port, timeout: .seconds(10), process: launched)
                state.withLock { $0.everStarted = true }
                return
            } catch let exited as ChildProcessExited {
                let output = String((launched.standardOutput + launched.standardError).suffix(1000))
                state.withLock { $0.process = nil }
                attempts += 1
                // Most likely the port was taken meanwhile: before anyone saw it, take another.
                guard !everStarted, attempts < 5 else {
                    throw LocalClusterError("\(exited) on port \(port): \(output)")
                }
                let next = try freeLoopbackPort(excluding: [port])
                state.withLock { $0.port = next }
            } catch let timedOut as LocalClusterError {
                launched.terminateIfRunning()
                state.withLock { $0.process = nil }
                throw LocalClusterError("\(timedOut): \(String((launched.standardOutput + launched.standardError).suffix(1000)))")
            } catch {
                launched.terminateIfRunning()
                state.withLock { $0.process = nil }
                throw error
            }
        }
    }

    /// Stops the server: gracefully (SIGTERM: Redis finishes its append-only file) or with
    /// SIGKILL, as a crash would. Does nothing if it does not run.
    ///
    /// - Throws: `LocalClusterError` when it still runs after 10 s (it is left running).
    package func stop(graceful: Bool = true) async throws {
        guard let running = state.withLock({ $0.process }) else { return }
        running.send(graceful ? SIGTERM : SIGKILL)
        _ = try await running.waitForExit(timeout: .seconds(10))
        state.withLock { if $0.process === running { $0.process = nil } }
    }

    /// Kills the server with SIGKILL if it runs and reaps it, without suspending (for cleanup).
    package func terminateIfRunning() {
        state.withLock {
            $0.process?.terminateIfRunning()
            $0.process = nil
        }
    }

    private func serverArguments(port: Int) -> [String] {
        switch kind {
        case .redis(let appendOnly):
            [
                "--bind", "127.0.0.1", "--port", "\(port)", "--dir", directory, "--save", "",
                "--appendonly", appendOnly ? "yes" : "no", "--appendfsync", "always",
            ]
        case .nats:
            ["-a", "127.0.0.1", "-p", "\(port)"]
        case .sentinel(let name, let masterPort, let quorum, let downAfter):
            sentinelArguments(port: port, name: name, masterPort: masterPort, quorum: quorum, downAfter: downAfter)
        }
    }

    /// A fresh configuration file (Sentinel keeps what it learned in it; a restart keeps that),
    /// then `--sentinel`.
    private func sentinelArguments(port: Int, name: String, masterPort: Int, quorum: Int, downAfter: Int) -> [String] {
        let file = directory + "/sentinel.conf"
        if !FileManager.default.fileExists(atPath: file) {
            let text = """
                bind 127.0.0.1
                dir \(directory)
                sentinel monitor \(name) 127.0.0.1 \(masterPort) \(quorum)
                sentinel down-after-milliseconds \(name) \(downAfter)
                sentinel failover-timeout \(name) \(max(downAfter * 4, 2000))
                sentinel parallel-syncs \(name) 1

                """
            _ = FileManager.default.createFile(atPath: file, contents: Data(text.utf8))
        }
        return [file, "--sentinel", "--port", "\(port)"]
    }
}

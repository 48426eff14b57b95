import Foundation
import RelayClient
import Synchronization

/// The built `relay` executable run as a child process, as an operator would run it.
///
/// Spawned with `posix_spawn` and reaped with `waitpid(WNOHANG)`, never with Foundation's
/// `Process`, whose blocking `select`/`ppoll` calls would hold one of the two cooperative
/// threads. Output goes to files, so nothing ever blocks on a pipe.
/// Also runs a test's own redis-server or nats-server.
final class RelayProcess: Sendable {
    let pid: pid_t
    private let outputPath: String
    private let errorPath: String
    private let status = Mutex<Int32?>(nil)

    var standardOutput: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    var standardError: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    static var executable: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("relay").path
    }

    static func launch(
        executable: String = RelayProcess.executable, arguments: [String] = [], environment: [String: String]
    ) throws -> RelayProcess {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw TestFailure("executable not found at \(executable)")
        }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("relay-\(UUID().uuidString)").path
        let (out, err) = (base + ".out", base + ".err")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let env = environment.merging(["LOG_LEVEL": "warning"]) { a, _ in a }.map { "\($0.key)=\($0.value)" }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        // The test process ignores or blocks some signals (dispatch signal sources); a child must
        // start with the defaults, or SIGTERM would not stop a redis-server.
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
        var pid = pid_t()
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw TestFailure("posix_spawn failed: \(rc)") }
        return RelayProcess(pid: pid, outputPath: out, errorPath: err)
    }

    private init(pid: pid_t, outputPath: String, errorPath: String) {
        self.pid = pid
        self.outputPath = outputPath
        self.errorPath = errorPath
    }

    deinit {
        unlink(outputPath)
        unlink(errorPath)
    }

    func waitUntilHealthy(baseURL: String) async throws {
        let http = RelayHTTPClient(baseURL: baseURL)
        for _ in 0..<200 {
            if (try? await http.get("/healthz", timeout: .seconds(1)))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("relay at \(baseURL) never became healthy")
    }

    /// The exit status once the process has ended, without blocking.
    private func reap() -> Int32? {
        status.withLock { status in
            if status != nil { return status }
            var raw: Int32 = 0
            guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
            // WIFEXITED / WEXITSTATUS, or 128 + signal.
            status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            return status
        }
    }

    /// Waits for exit and returns the exit status.
    func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = reap() { return status }
            guard ContinuousClock.now < deadline else { throw TestFailure("relay did not exit within \(timeout)") }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    /// Sends `signal` if the process still runs.
    func send(_ signal: Int32) {
        if reap() == nil { kill(pid, signal) }
    }

    var isRunning: Bool { reap() == nil }

    func terminateIfRunning() {
        if reap() == nil {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            waitpid(pid, &raw, 0)
        }
    }
}

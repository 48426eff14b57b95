// A child process: posix_spawn, output to files, non-blocking reaping.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A program run as a child process: the built `relay`, a redis-server or nats-server of our own,
/// or a command such as `openssl`.
///
/// Spawned with `posix_spawn` and reaped with `waitpid(WNOHANG)`, never with Foundation's
/// `Process`, whose blocking `select`/`ppoll` calls would hold one of the few cooperative
/// threads. Standard output and standard error go to temporary files (removed with the object),
/// so nothing ever blocks on a pipe. The parent (a test runner, the load harness) may ignore or
/// block some signals (dispatch signal sources); the child starts with the default dispositions of
/// SIGTERM, SIGINT, SIGPIPE and SIGHUP and an empty signal mask, so that SIGTERM stops a
/// redis-server as it would from a shell.
package final class ChildProcess: Sendable {
    /// The child's process id.
    package let pid: pid_t
    /// The program as given to `launch`, for messages.
    package let executable: String
    private let outputPath: String
    private let errorPath: String
    /// The exit status once reaped; reaping happens under this lock only, so the pid is never
    /// signalled after it was reaped.
    private let status = Mutex<Int32?>(nil)

    /// Everything the child wrote to standard output so far.
    package var standardOutput: String { Self.contents(of: outputPath) }
    /// Everything the child wrote to standard error so far.
    package var standardError: String { Self.contents(of: errorPath) }

    /// Starts `executable` with `arguments`.
    ///
    /// - Parameters:
    ///   - executable: a path, or a bare name looked up in `PATH`.
    ///   - environment: the child's whole environment; nil passes on this process's environment.
    /// - Throws: `LocalClusterError` when the program is not executable or cannot be started.
    package static func launch(
        executable: String, arguments: [String] = [], environment: [String: String]? = nil
    ) throws -> ChildProcess {
        if executable.contains("/"), access(executable, X_OK) != 0 {
            throw LocalClusterError("\(executable) is not an executable file")
        }
        let outputPath = try temporaryFile()
        let errorPath: String
        do {
            errorPath = try temporaryFile()
        } catch {
            unlink(outputPath)
            throw error
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_TRUNC, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_TRUNC, 0)

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

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { (argv + (envp ?? [])).forEach { free($0) } }
        var pid = pid_t()
        let result =
            if let envp {
                posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
            } else {
                posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
            }
        guard result == 0 else {
            unlink(outputPath)
            unlink(errorPath)
            throw LocalClusterError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return ChildProcess(pid: pid, executable: executable, outputPath: outputPath, errorPath: errorPath)
    }

    private init(pid: pid_t, executable: String, outputPath: String, errorPath: String) {
        self.pid = pid
        self.executable = executable
        self.outputPath = outputPath
        self.errorPath = errorPath
    }

    deinit {
        unlink(outputPath)
        unlink(errorPath)
    }

    /// The exit status once the process has ended, reaping it without blocking; nil while it
    /// runs. The status is the exit code, or 128 + the signal that ended it.
    package func reap() -> Int32? {
        status.withLock { status in
            if status == nil { status = Self.reapNow(pid) }
            return status
        }
    }

    /// Whether the process has not ended yet.
    package var isRunning: Bool { reap() == nil }

    /// Sends `signal` if the process still runs.
    package func send(_ signal: Int32) {
        status.withLock { status in
            if status == nil { status = Self.reapNow(pid) }
            if status == nil { kill(pid, signal) }
        }
    }

    /// Waits (polling, so no cooperative thread blocks) until the process ends.
    ///
    /// - Returns: the exit status, as `reap` gives it.
    /// - Throws: `LocalClusterError` when it still runs after `timeout`; it is left running.
    package func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = reap() { return status }
            guard ContinuousClock.now < deadline else {
                throw LocalClusterError("\(executable) (pid \(pid)) did not exit within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Kills the process with SIGKILL if it still runs and reaps it (this blocks only as long as
    /// the kernel takes to end it).
    package func terminateIfRunning() {
        status.withLock { status in
            if status == nil { status = Self.reapNow(pid) }
            guard status == nil else { return }
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1, errno == EINTR {}
            status = Self.decode(raw)
        }
    }

    private static func reapNow(_ pid: pid_t) -> Int32? {
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
        return decode(raw)
    }

    /// WIFEXITED / WEXITSTATUS, or 128 + WTERMSIG.
    private static func decode(_ raw: Int32) -> Int32 {
        (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    /// A new empty file in `TMPDIR` (or /tmp).
    private static func temporaryFile() throws -> String {
        let directory = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(directory)/relay-child-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { throw LocalClusterError("cannot create a temporary file in \(directory)") }
        close(descriptor)
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    private static func contents(of path: String) -> String {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return "" }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Thrown by `waitUntilAccepting` when the process that should have started listening ended
/// first (for a server, typically: its port was taken meanwhile).
package struct ChildProcessExited: Error, CustomStringConvertible {
    /// The program, as given to `ChildProcess.launch`.
    package let executable: String
    /// Its exit status, as `ChildProcess.reap` gives it.
    package let status: Int32

    /// `<executable> exited with status <status>`.
    package var description: String { "\(executable) exited with status \(status)" }
}

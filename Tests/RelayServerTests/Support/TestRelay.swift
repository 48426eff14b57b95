import Foundation
import Logging
import NIOPosix
import RelayTestClient
import RelayCore
import RelayServer
import RelayLocalCluster
import RelayTestSupport
import ServiceLifecycle
import Synchronization
import Testing

/// A relay node started in this process on a real loopback port, with its logs captured.
final class TestRelay: Sendable {
    let application: RelayApplication
    let port: Int
    let logs: LogCapture
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var wsURL: String { "ws://127.0.0.1:\(port)/ws" }
    var http: RelayHTTPClient { RelayHTTPClient(baseURL: baseURL) }

    /// Starts a node with the reference test defaults (PROTOCOL §10): allowed origin
    /// `http://localhost:4173`, then `configure`'s changes. It listens on a port the system
    /// chooses (`PORT=0`), so no two nodes ever race for one; the default `wsURL` names that port.
    /// `clock` is what the node's core measures time by (a ``ManualClock`` lets a test move it).
    static func start(
        clock: any RelayClock = SystemClock(), _ configure: (inout [String: String]) -> Void = { _ in }
    ) async throws -> TestRelay {
        var env = ["HOST": "127.0.0.1", "PORT": "0", "ALLOWED_ORIGINS": "http://localhost:4173"]
        configure(&env)
        let configuration = try RelayConfiguration.fromEnvironment(env)
        let logs = LogCapture()
        var logger = Logger(label: "relay-test") { _ in LogCapture.Handler(capture: logs) }
        logger.logLevel = .debug
        let (listening, continuation) = AsyncStream<Int>.makeStream()
        let application = RelayApplication(configuration: configuration, logger: logger, clock: clock) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: application)], logger: logger))
        // The stream also ends when the group stops before listening (a bind that failed), so the
        // wait below always ends.
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var bound: Int?
        for await p in listening { bound = p }
        guard let bound else {
            let result = await task.result
            throw TestFailure("the relay stopped before listening: \(result) \(logs.lines.suffix(3))")
        }
        return TestRelay(application: application, port: bound, logs: logs, group: group, task: task)
    }

    private init(application: RelayApplication, port: Int, logs: LogCapture, group: ServiceGroup, task: Task<Void, any Error>) {
        self.application = application
        self.port = port
        self.logs = logs
        self.group = group
        self.task = task
    }

    /// Graceful shutdown, as SIGTERM would do it; waits for `run` to return. A shutdown that does
    /// not finish within 30 s fails the test with the node's last log lines instead of hanging it.
    func stop(sourceLocation: SourceLocation = #_sourceLocation) async {
        await group.triggerGracefulShutdown()
        let task = self.task
        // Unstructured on purpose: awaiting a task's result cannot be cancelled, so a task group
        // would wait for a hung shutdown after all.
        let finished = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let resumed = Mutex(false)
            let resume: @Sendable (Bool) -> Void = { value in
                if resumed.withLock({ done in defer { done = true }; return !done }) { continuation.resume(returning: value) }
            }
            Task { _ = await task.result; resume(true) }
            Task { try? await Task.sleep(for: .seconds(30)); resume(false) }
        }
        if !finished {
            Issue.record("the relay did not stop within 30 s; last log lines: \(logs.lines.suffix(8))", sourceLocation: sourceLocation)
            task.cancel()
        }
    }

    /// `GET /metricsz` as JSON.
    func metrics() async throws -> JSONValue {
        try await http.get("/metricsz").json()
    }

    /// `POST path` with a JSON body and optional headers.
    func post(_ path: String, _ body: JSONValue, headers: [(String, String)] = []) async throws -> RelayHTTPResponse {
        try await http.postJSON(path: path, body: body, headers: headers)
    }
}

/// Runs `body` against a fresh relay and stops it afterwards, whatever happens.
func withRelay(
    clock: any RelayClock = SystemClock(), _ configure: (inout [String: String]) -> Void = { _ in },
    _ body: (TestRelay) async throws -> Void
) async throws {
    let relay = try await TestRelay.start(clock: clock, configure)
    do {
        try await body(relay)
    } catch {
        await relay.stop()
        throw error
    }
    await relay.stop()
}

/// Every log line of a test relay, rendered as `level message key=value…`.
final class LogCapture: Sendable {
    private let storage = Mutex<[String]>([])

    var lines: [String] { storage.withLock { $0 } }

    func contains(_ fragment: String) -> Bool { lines.contains { $0.contains(fragment) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .debug
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let meta = metadata.merging(event.metadata ?? [:]) { $1 }.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
            capture.storage.withLock { $0.append("\(event.level) \(event.message) \(meta)") }
        }
    }
}

extension RelayWebSocket {
    /// The next text frame parsed as JSON, skipping pings and pongs.
    /// Bounds are generous: a frame comes as soon as the relay sends it, and the bound only says
    /// when to give up on a machine busy with the rest of the suite.
    func nextFrame(_ timeout: Duration = .seconds(30)) async throws -> JSONValue {
        try await nextJSON(timeout: timeout)
    }

    /// The next text frame, skipping pings and pongs, recorded as an issue if it is not `expected`.
    fileprivate func expectNextText(
        _ expected: (String) -> Bool, sentinel: String, sourceLocation: SourceLocation
    ) async throws {
        while true {
            guard let event = try await next(timeout: .seconds(30)) else {
                Issue.record("the connection ended before the sentinel \(sentinel)", sourceLocation: sourceLocation)
                return
            }
            switch event {
            case .ping, .pong: continue
            case .text(let text) where expected(text): return
            default:
                Issue.record("expected nothing before the sentinel \(sentinel), got \(event)", sourceLocation: sourceLocation)
                return
            }
        }
    }

    /// Reads until the connection ends; returns the text frames and the close code seen.
    func readUntilClosed(_ timeout: Duration = .seconds(30)) async throws -> (texts: [String], closeCode: UInt16?) {
        var texts: [String] = []
        var code: UInt16?
        for event in try await waitForClosed(timeout: timeout) {
            switch event {
            case .text(let t): texts.append(t)
            case .close(let c, _): code = c
            default: break
            }
        }
        return (texts, code)
    }
}

/// A well-formed opaque token / id of the given length.
func opaque(_ length: Int = 43) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    return String((0..<length).map { _ in alphabet.randomElement()! })
}

func futureTimestamp(_ seconds: Double = 120) -> String {
    RelayTimestamp.rfc3339(Date().addingTimeInterval(seconds))
}

let allowedOrigin = "http://localhost:4173"

/// Joins one more phone to `desktop`'s session with its current join token, approved by the
/// desktop; expects the join to succeed and returns the phone, not yet connected.
func approveAnotherPhone(
    _ desktop: RelayDesktop, relay: TestRelay, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> RelayPhone {
    let phone = RelayPhone(baseURL: relay.baseURL)
    async let join = phone.join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
    let request = try await desktop.nextPairRequest()
    try await desktop.decide(requestID: request.requestID, approved: true)
    #expect(try await join.status == 200, sourceLocation: sourceLocation)
    return phone
}

// MARK: - "Nothing arrives" checks that end on a sentinel, never on a silence window

/// Asserts that nothing is queued for the desktop socket: it sends a `relay.pair_decision` for no
/// request, which the relay answers on the same queue with `relay.pair_result`, so that answer is
/// the next frame unless something was queued before it. Anything a phone frame caused is queued
/// before the phone hears its own answer, so call this after that answer.
func expectNothingQueued(forDesktop desktop: RelayWebSocket, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let id = "sentinel-\(opaque(12))"
    try await desktop.sendText(#"{"type":"relay.pair_decision","requestID":"\#(id)","approved":false}"#)
    try await desktop.expectNextText({ (try? JSONValue.parse($0))?["requestID"]?.stringValue == id }, sentinel: id, sourceLocation: sourceLocation)
}

/// Asserts that nothing is queued for `phone`: `desktop` sends a frame, which the relay forwards
/// to every phone in order after whatever the desktop sent before, so it is the phone's next frame
/// unless something was queued before it.
func expectNothingQueued(
    forPhone phone: RelayWebSocket, after desktop: RelayWebSocket, sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    let sentinel = #"{"type":"test.sentinel","id":"\#(opaque(12))"}"#
    try await desktop.sendText(sentinel)
    try await phone.expectNextText({ $0 == sentinel }, sentinel: sentinel, sourceLocation: sourceLocation)
}

/// Asserts that the phone's own earlier frames got no answer: it sends `[0]`, which the relay
/// answers on the same queue with `invalid_payload` after any answer to what came before.
func expectNoAnswerToEarlierFrames(ofPhone phone: RelayWebSocket, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    try await phone.sendText("[0]")
    try await phone.expectNextText(
        { (try? JSONValue.parse($0))?["message"]?.stringValue == "Payload must be a JSON object." },
        sentinel: "[0]", sourceLocation: sourceLocation)
}

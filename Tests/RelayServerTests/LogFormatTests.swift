import Foundation
import RelayLocalCluster
import RelayTestClient
import RelayTestSupport
import Testing

/// The operator's view of a node's logs and build: one event-naming scheme, the fields of each
/// line as JSON fields with `LOG_FORMAT=json`, and `relay --version`.
@Suite("Log format and version", .serialized, .timeLimit(.minutes(2)))
struct LogFormatTests {
    @Test func jsonLinesCarryTheEventAndItsFieldsAsFields() async throws {
        let node = try LocalRelayNode.launch(
            port: try freeLoopbackPort(), environment: ["LOG_LEVEL": "info", "LOG_FORMAT": "json", "ALLOWED_ORIGINS": allowedOrigin])
        defer { node.process.terminateIfRunning() }
        try await node.waitUntilHealthy()
        // A refused socket and a refused join: the two lines on-call greps most.
        let socket = try await RelayWebSocket.connect(to: node.socketURL, headers: [("User-Agent", "Probe Phone/1.0 (test)")])
        try await socket.sendText(#"{"type":"relay.auth","token":"\#(opaque())"}"#)
        _ = try await socket.waitForClosed(timeout: .seconds(10))
        _ = try await node.http.postJSON(
            path: "/pair/join", body: ["sessionID": .string(opaque(22)), "joinToken": .string(opaque())],
            headers: [("Origin", allowedOrigin)])
        _ = try await node.stop()

        let lines = node.process.standardError.split(separator: "\n").map(String.init)
        let objects = lines.compactMap { try? JSONValue.parse($0) }
        #expect(objects.count == lines.count, "every line is one JSON object: \(lines.filter { (try? JSONValue.parse($0)) == nil })")
        // One naming scheme: every line names its event, in snake_case, and starts its text with it.
        for object in objects {
            let event = object["event"]?.stringValue ?? ""
            #expect(event.range(of: "^[a-z][a-z0-9_]*$", options: .regularExpression) != nil, "no event name: \(object)")
            #expect(object["msg"]?.stringValue?.hasPrefix(event) == true, "\(object)")
        }
        let listening = try #require(objects.first { $0["event"]?.stringValue == "listening" })
        #expect(listening["port"]?.stringValue == "\(node.port)")
        let refused = try #require(objects.first { $0["event"]?.stringValue == "ws_auth_failure" }, "\(lines)")
        #expect(refused["reason"]?.stringValue == "token_not_found")
        #expect(refused["remote_ip"]?.stringValue == "127.0.0.1")
        #expect(refused["user_agent"]?.stringValue == "Probe Phone/1.0 (test)")
        #expect(refused["msg"]?.stringValue?.contains("reason=token_not_found") == true, "the text keeps its greppable pairs")
        let join = try #require(objects.first { $0["event"]?.stringValue == "pair_join_failure" }, "\(lines)")
        #expect(join["code"]?.stringValue == "session_not_found" && join["status"]?.stringValue == "404", "\(join)")
    }

    @Test func versionSaysWhichBuildRuns() async throws {
        let process = try RelayProcess.launch(arguments: ["--version"], environment: [:])
        #expect(try await process.waitForExit(timeout: .seconds(30)) == 0)
        let text = process.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(text.range(of: #"^relay \d+\.\d+\.\d+ \(revision [0-9a-z]+, Swift \d+\.\d+"#, options: .regularExpression) != nil, "\(text)")
    }
}

import Foundation
import RelayTestClient
import RelayTestSupport
import Testing

/// A client that pools its HTTP connections (a proxy, a load balancer, an app's URL session) uses
/// one keep-alive connection for its requests and then upgrades it: the whole pairing, with each
/// party on a single TCP connection from its first request to its WebSocket.
@Suite("Pooled keep-alive connections", .timeLimit(.minutes(2)))
struct PooledConnectionTests {
    @Test func aWholePairingAndBothSocketsRunOverReusedConnections() async throws {
        try await withRelay { relay in
            let sessionID = opaque(24), joinToken = opaque(), desktopToken = opaque()

            // The desktop: /healthz, /pair/start, then the same connection becomes its socket.
            let desktop = try await RawConnection.connect(port: relay.port)
            try await desktop.send(request("GET", "/healthz"))
            #expect(try await desktop.readResponse()?.status == 200)
            try await desktop.send(request("POST", "/pair/start", body: #"""
                {"sessionID":"\#(sessionID)","joinToken":"\#(joinToken)","desktopSessionToken":"\#(desktopToken)","joinTokenExpiresAt":"\#(futureTimestamp())"}
                """#))
            #expect(try await desktop.readResponse()?.status == 200)
            try await desktop.upgradeToWebSocket()
            try await desktop.sendText(#"{"type":"relay.auth","token":"\#(desktopToken)"}"#)
            #expect(try await desktop.readFrame()?.json?["type"] as? String == "auth_ok")

            // The phone: /livez, then a /pair/join long-poll on the same connection.
            let phone = try await RawConnection.connect(port: relay.port)
            try await phone.send(request("GET", "/livez"))
            #expect(try await phone.readResponse()?.status == 200)
            try await phone.send(request("POST", "/pair/join", body: #"""
                {"sessionID":"\#(sessionID)","joinToken":"\#(joinToken)","deviceName":"Pooled Phone"}
                """#))

            // The desktop approves over its upgraded connection.
            let pairRequest = try #require(try await desktop.readFrame()?.json)
            #expect(pairRequest["type"] as? String == "relay.pair_request")
            let requestID = try #require(pairRequest["requestID"] as? String)
            try await desktop.sendText(#"{"type":"relay.pair_decision","sessionID":"\#(sessionID)","requestID":"\#(requestID)","approved":true}"#)
            let joined = try #require(try await phone.readResponse(timeout: .seconds(20)))
            #expect(joined.status == 200, "\(joined)")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(joined.body)) as? [String: Any])
            let deviceToken = try #require(body["deviceSessionToken"] as? String)

            // The phone's pooled connection becomes its socket too.
            try await phone.upgradeToWebSocket(headers: [("Origin", allowedOrigin)])
            try await phone.sendText(#"{"type":"relay.auth","token":"\#(deviceToken)"}"#)
            let phoneOK = try #require(try await phone.readFrame()?.json)
            #expect(phoneOK["type"] as? String == "auth_ok")
            #expect(phoneOK["role"] as? String == "mobile")

            // Traffic both ways over the two reused connections.
            try await phone.sendText(#"""
                {"schemaVersion":2,"sessionID":"\#(sessionID)","seq":1,"timestamp":"\#(RelayTimestamp.rfc3339(Date()))","payload":{"type":"command","payload":{"name":"thread.select","commandID":"cmd-1","threadID":"t-1"}}}
                """#)
            var command: [String: Any]?
            for _ in 0..<5 {
                guard let frame = try await desktop.readFrame()?.json else { break }
                if frame["seq"] as? Int == 1 { command = frame; break }
            }
            #expect((command?["payload"] as? [String: Any])?["type"] as? String == "command")
            try await desktop.sendText(#"{"type":"event","sessionID":"\#(sessionID)","payload":{"kind":"pooled"}}"#)
            var event: [String: Any]?
            for _ in 0..<5 {
                guard let frame = try await phone.readFrame()?.json else { break }
                if frame["type"] as? String == "event" { event = frame; break }
            }
            #expect((event?["payload"] as? [String: Any])?["kind"] as? String == "pooled")
            desktop.close()
            phone.close()
        }
    }

    /// One HTTP/1.1 request on a keep-alive connection.
    private func request(_ method: String, _ path: String, body: String? = nil) -> String {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if let body {
            text += "Content-Type: application/json\r\nOrigin: \(allowedOrigin)\r\nContent-Length: \(body.utf8.count)\r\n"
        }
        return text + "\r\n" + (body ?? "")
    }
}

extension RawWebSocketFrame {
    /// The text payload parsed as a JSON object, if it is one.
    var json: [String: Any]? {
        guard let text else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }
}

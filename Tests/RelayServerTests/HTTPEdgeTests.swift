import Foundation
import RelayTestClient
import RelayTestSupport
import Testing

/// HTTP/1.1 connection handling (RFC 9112) and WebSocket framing (RFC 6455) at the byte level:
/// persistent connections, pipelining, malformed requests, timeouts, connection caps, and the
/// refusals counted in `relay_http_rejections_total`. Bounds are generous and follow events; no
/// test asserts that something is fast or that nothing happens.
@Suite("HTTP and WebSocket edges", .timeLimit(.minutes(2)))
struct HTTPEdgeTests {
    // MARK: WebSocket upgrade on a persistent connection

    @Test func webSocketUpgradeIsHonouredAfterAGetOnTheSameConnection() async throws {
        try await withRelay { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send(get("/healthz"))
            #expect(try await connection.readResponse()?.status == 200)
            try await connection.upgradeToWebSocket()
            try await expectUnknownTokenGetsSessionExpired(connection)
        }
    }

    @Test func webSocketUpgradeIsHonouredAfterAPairStartOnTheSameConnection() async throws {
        try await withRelay { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send(post("/pair/start", pairStartBody()))
            let start = try await connection.readResponse()
            #expect(start?.status == 200, "\(start.map(String.init(describing:)) ?? "no response")")
            try await connection.upgradeToWebSocket()
            try await expectUnknownTokenGetsSessionExpired(connection)
        }
    }

    // MARK: Persistent connections and framing

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withRelay { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send(get("/healthz") + get("/livez") + get("/nope"))
            let health = try await connection.readResponse()
            let live = try await connection.readResponse()
            let missing = try await connection.readResponse()
            #expect(health?.status == 200)
            #expect(health?.bodyText.contains("activeWebSockets") == true, "the first answer is /healthz's")
            #expect(live?.status == 200)
            #expect(live?.bodyText.contains("activeWebSockets") == false, "the second answer is /livez's")
            #expect(missing?.status == 404)
        }
    }

    @Test func connectionCloseRequestIsAnsweredWithConnectionCloseThenClosed() async throws {
        try await withRelay { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send(get("/healthz", headers: [("Connection", "close")]))
            let response = try #require(try await connection.readResponse())
            #expect(response.status == 200)
            #expect(response.headerHasToken("connection", "close"), "\(response)")
            #expect(try await connection.waitForClose(), "the server keeps a Connection: close connection open")
        }
    }

    @Test func http10RequestWithoutKeepAliveIsAnsweredThenClosed() async throws {
        try await withRelay { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send("GET /healthz HTTP/1.0\r\n\r\n")
            let response = try #require(try await connection.readResponse())
            #expect(response.status == 200)
            #expect(try await connection.waitForClose(), "the server keeps an HTTP/1.0 connection open")
        }
    }

    @Test func headResponseHasContentLengthAndNoBodyBytes() async throws {
        try await withRelay { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send("HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            let head = try #require(try await connection.readResponse(forHEAD: true))
            #expect(head.status == 200)
            #expect(head.header("content-length").flatMap { Int($0) } != nil, "\(head)")
            // Body bytes after a HEAD response would be read as the next status line and fail the parse.
            try await connection.send(get("/healthz"))
            let next = try #require(try await connection.readResponse())
            #expect(next.status == 200)
            #expect(try JSONValue.parse(next.body)["ok"]?.boolValue == true)
        }
    }

    @Test func expect100ContinueGetsAnInterimResponseBeforeTheFinalOne() async throws {
        try await withRelay { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            let body = pairStartBody()
            try await connection.send(
                "POST /pair/start HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n")
            let interim = try #require(try await connection.readResponse())
            #expect(interim.status == 100, "\(interim)")
            try await connection.send(body)
            let final = try #require(try await connection.readResponse())
            #expect(final.status == 200, "\(final)")
        }
    }

    @Test func chunkedRequestBodyIsAcceptedLikeAContentLengthBody() async throws {
        try await withRelay { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send(post("/pair/start", pairStartBody()))
            let plain = try #require(try await connection.readResponse())
            #expect(plain.status == 200, "\(plain)")

            let body = Array(pairStartBody().utf8)
            let split = body.count / 3
            var request = Array(
                "POST /pair/start HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            for piece in [body[..<split], body[split...]] {
                request += Array("\(String(piece.count, radix: 16));ext=1\r\n".utf8) + piece + Array("\r\n".utf8)
            }
            request += Array("0\r\n\r\n".utf8)
            try await connection.send(request)
            let chunked = try #require(try await connection.readResponse())
            #expect(chunked.status == plain.status, "\(chunked)")
        }
    }

    // MARK: Malformed and oversized requests

    @Test(arguments: MalformedRequest.allCases)
    func malformedRequestIsRefusedAndClosed(_ request: MalformedRequest) async throws {
        try await withRelay { relay in
            let before = try await relay.httpRejections("malformed_request")
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send(request.bytes)
            let status = try await expectRefusedAndClosed(connection, statuses: request.statuses)
            if status == 400 {
                try await expectRejectionsGrow(relay, "malformed_request", from: before, by: 1)
            }
        }
    }

    @Test func oversizedHeadersAre431AndClosed() async throws {
        try await withRelay { relay in
            let before = try await relay.httpRejections("header_too_large")
            let connection = try await RawConnection.connect(port: relay.port)
            var request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            for index in 0..<80 { request += "X-Filler-\(index): \(String(repeating: "a", count: 1000))\r\n" }
            request += "\r\n"
            await connection.sendInPieces(Array(request.utf8))
            try await expectRefusedAndClosed(connection, statuses: [431])
            try await expectRejectionsGrow(relay, "header_too_large", from: before, by: 1)
        }
    }

    @Test func oversizedRequestURIIs414Or431AndClosed() async throws {
        try await withRelay { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            let request = "GET /healthz?q=\(String(repeating: "a", count: 100_000)) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            await connection.sendInPieces(Array(request.utf8))
            try await expectRefusedAndClosed(connection, statuses: [414, 431])
        }
    }

    @Test func bodyOverMaxJSONBytesIs413AndTheConnectionNeverGoesSilent() async throws {
        try await withRelay({ $0["MAX_JSON_BYTES"] = "64" }) { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            let body = String(repeating: " ", count: 1000)
            await connection.sendInPieces(Array(post("/pair/start", body).utf8))
            let response = try #require(try await connection.readResponse())
            #expect(response.status == 413, "\(response)")
            try await expectClosedOrAnswering(connection)
        }
    }

    @Test func errorResponsesLeaveTheConnectionClosedOrAnswering() async throws {
        try await withRelay { relay in
            let cases: [(String, Int)] = [
                (get("/nope"), 404),
                (get("/pair/start"), 405),
                (post("/pair/start", "{}", contentType: "text/plain"), 415),
                (post("/pair/start", "{"), 400),
                (post("/pair/start", #"{"unexpected":true}"#), 422),
                (get("/ws"), 400),
            ]
            var connection = try await RawConnection.connect(port: relay.port)
            for (request, expected) in cases {
                if connection.isClosed { connection = try await RawConnection.connect(port: relay.port) }
                try await connection.send(request)
                let response = try await connection.readResponse()
                let answer = response.map(String.init(describing:)) ?? "closed without a response"
                #expect(response?.status == expected, "\(request.prefix(40)): \(answer)")
                try await expectClosedOrAnswering(connection)
            }
        }
    }

    // MARK: Timeouts

    @Test func silentConnectionIsClosedAfterTheIdleTimeout() async throws {
        try await withShortTimeout("HTTP_IDLE_TIMEOUT_MS", 400) { relay in
            let before = try await relay.httpRejections("idle_timeout")
            let connection = try await RawConnection.connect(port: relay.port)
            try await expectTimedOut(
                connection, relay, "idle_timeout", from: before, within: .seconds(30),
                "a silent connection outlived a 400 ms idle timeout by 30 s")
        }
    }

    @Test func trickledRequestHeadIsClosedAfterTheHeaderTimeout() async throws {
        try await withShortTimeout("HTTP_HEADER_TIMEOUT_MS", 400) { relay in
            let before = try await relay.httpRejections("header_timeout")
            let connection = try await RawConnection.connect(port: relay.port)
            // One byte every 100 ms of a head that would take 100 s to finish: activity never stops.
            let head = Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: \(String(repeating: "a", count: 1000))".utf8)
            let started = ContinuousClock.now
            var sent = 0
            while sent < head.count, ContinuousClock.now - started < .seconds(10) {
                guard await connection.sendIfOpen([head[sent]]) else { break }
                sent += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            try await expectTimedOut(
                connection, relay, "header_timeout", from: before, within: .seconds(1),
                "a trickled head outlived a 400 ms header timeout by 10 s")
        }
    }

    @Test func stalledRequestBodyIsClosedAfterTheBodyTimeout() async throws {
        try await withShortTimeout("HTTP_BODY_TIMEOUT_MS", 400) { relay in
            let before = try await relay.httpRejections("body_timeout")
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send(
                "POST /pair/start HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sessionI")
            try await expectTimedOut(
                connection, relay, "body_timeout", from: before, within: .seconds(30),
                "a stalled body outlived a 400 ms body timeout by 30 s")
        }
    }

    @Test func keepAliveConnectionIsClosedAfterTheIdleTimeoutFollowingAResponse() async throws {
        // Idle long enough for the request itself to arrive on a busy machine.
        try await withShortTimeout("HTTP_IDLE_TIMEOUT_MS", 1500) { relay in
            let connection = try await RawConnection.connect(port: relay.port)
            try await connection.send(get("/healthz"))
            #expect(try await connection.readResponse()?.status == 200)
            #expect(
                try await connection.waitForClose(timeout: .seconds(30)), "an idle keep-alive connection outlived a 1.5 s idle timeout by 30 s")
        }
    }

    @Test func pairJoinLongPollOutlivesTheBodyAndHeaderTimeouts() async throws {
        try await withRelay({
            $0["HTTP_BODY_TIMEOUT_MS"] = "1000"
            $0["HTTP_HEADER_TIMEOUT_MS"] = "1000"
        }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            #expect(try await desktop.startPairing().status == 200)
            _ = try await desktop.connect()
            async let join = RelayPhone(baseURL: relay.baseURL)
                .join(sessionID: desktop.sessionID, joinToken: desktop.joinToken, timeout: .seconds(30))
            // The pair request proves the join is in flight; then it waits well past both timeouts.
            let request = try await desktop.nextPairRequest(timeout: .seconds(10))
            try await Task.sleep(for: .seconds(3))
            try await desktop.decide(requestID: request.requestID, approved: true)
            let response = try await join
            #expect(response.status == 200, "\(response.status) \(response.bodyText)")
            await desktop.disconnect()
        }
    }

    @Test func upgradedWebSocketsOutliveTheHTTPTimeouts() async throws {
        // Timeouts short enough to pass several times over, long enough for each request of the
        // pairing to arrive on a busy machine.
        try await withRelay({
            $0["HTTP_IDLE_TIMEOUT_MS"] = "1000"
            $0["HTTP_HEADER_TIMEOUT_MS"] = "1000"
            $0["HTTP_BODY_TIMEOUT_MS"] = "1000"
        }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL, timeout: .seconds(10))
            try await Task.sleep(for: .milliseconds(4000))
            try await paired.desktop.sendEvent(seq: 1)
            #expect(try await paired.phone.socket.nextFrame()["seq"]?.intValue == 1)
            await paired.phone.disconnect()
            await paired.desktop.disconnect()
        }
    }

    // MARK: Connection cap and hostile load

    @Test func connectionsBeyondMaxHTTPConnectionsAreClosedAtOnceAndCounted() async throws {
        try await withRelay({ $0["MAX_HTTP_CONNECTIONS"] = "8" }) { relay in
            var held: [RawConnection] = []
            defer { for connection in held { connection.close() } }
            for _ in 0..<8 {
                // A request answered proves the server holds the connection.
                let connection = try await RawConnection.connect(port: relay.port)
                held.append(connection)
                try await connection.send(get("/healthz"))
                #expect(try await connection.readResponse()?.status == 200)
            }
            let ninth = try await RawConnection.connect(port: relay.port)
            defer { ninth.close() }
            #expect(try await ninth.waitForClose(timeout: .seconds(10)), "a 9th connection was kept with MAX_HTTP_CONNECTIONS=8")

            for connection in held { connection.close() }
            held = []
            let answers = await eventually(timeout: .seconds(60)) {
                (try? await relay.http.get("/healthz", timeout: .seconds(10)))?.status == 200
            }
            #expect(answers, "/healthz does not answer after the 8 connections closed")
            #expect(try await relay.httpRejections("connection_limit") >= 1)
        }
    }

    @Test func thousandHostileConnectionsNeitherStarveServiceNorOutliveTheirTimeouts() async throws {
        try raiseOpenFileLimit(atLeast: 4096)
        try await withRelay({
            $0["HTTP_IDLE_TIMEOUT_MS"] = "2000"
            $0["HTTP_HEADER_TIMEOUT_MS"] = "2000"
            $0["HTTP_BODY_TIMEOUT_MS"] = "2000"
        }) { relay in
            let idleBefore = try await relay.httpRejections("idle_timeout")
            let headerBefore = try await relay.httpRejections("header_timeout")
            let bodyBefore = try await relay.httpRejections("body_timeout")
            let partialHead = Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: ".utf8)
            let partialBody = Array(
                "POST /pair/start HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"s".utf8)
            let idle = try await openConnections(400, port: relay.port)
            let partial = try await openConnections(300, port: relay.port, sending: partialHead)
            let slowBodies = try await openConnections(300, port: relay.port, sending: partialBody)
            let all = idle + partial + slowBodies
            defer { for connection in all { connection.close() } }

            let health = try await relay.http.get("/healthz", timeout: .seconds(10))
            #expect(health.status == 200)
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL, timeout: .seconds(10))
            #expect(paired.phoneAuthOK["type"]?.stringValue == "auth_ok")
            await paired.phone.disconnect()
            await paired.desktop.disconnect()

            let deadline = ContinuousClock.now + .seconds(15)
            var stillOpen = 0
            for connection in all {
                let remaining = max(deadline - ContinuousClock.now, .milliseconds(1))
                if try await !connection.waitForClose(timeout: remaining) { stillOpen += 1 }
            }
            #expect(stillOpen == 0, "\(stillOpen) of 1000 hostile connections outlived 2 s timeouts by 15 s")
            try await expectRejectionsGrow(relay, "idle_timeout", from: idleBefore, by: 400)
            try await expectRejectionsGrow(relay, "header_timeout", from: headerBefore, by: 300)
            try await expectRejectionsGrow(relay, "body_timeout", from: bodyBefore, by: 300)
        }
    }

    @Test func upgradedSocketsHoldAPlaceUntilTheyAuthenticate() async throws {
        try await withRelay({ $0["MAX_HTTP_CONNECTIONS"] = "6" }) { relay in
            let before = try await relay.httpRejections("connection_limit")
            // Six upgraded sockets that have not authenticated fill the node's places (an attempt
            // refused while the metrics request above still held its place is made again).
            var sockets: [RawConnection] = []
            let filled = await eventually(timeout: .seconds(60)) {
                while sockets.count < 6 {
                    guard let socket = try? await RawConnection.connect(port: relay.port),
                        (try? await socket.upgradeToWebSocket()) != nil
                    else { return false }
                    sockets.append(socket)
                }
                return true
            }
            #expect(filled, "six sockets could not be upgraded with MAX_HTTP_CONNECTIONS=6")
            let refused = try await RawConnection.connect(port: relay.port)
            #expect(try await refused.waitForClose(), "a seventh connection was kept beside six unauthenticated sockets")
            // Closed sockets give their place back, and so do sockets that authenticate: with a
            // desktop and a phone connected, all six places take HTTP connections again.
            for socket in sockets { socket.close() }
            try await expectRejectionsGrow(relay, "connection_limit", from: before, by: 1)
            #expect(await eventually(timeout: .seconds(60)) { (try? await relay.http.get("/healthz", timeout: .seconds(10)).status) == 200 })
            // With six places a connection of the pairing can still meet the last closes of the
            // sockets above and be refused at once, as it should: pair again, as an app would.
            var session: RelayPairedSession?
            _ = await eventually(timeout: .seconds(60)) {
                session = try? await RelayPairing.pairConnected(baseURL: relay.baseURL, timeout: .seconds(10))
                return session != nil
            }
            let paired = try #require(session, "no pairing fitted under MAX_HTTP_CONNECTIONS=6")
            // Bounds follow the machine: each wait ends as soon as its answer comes.
            let sixFit = try await eventually(timeout: .seconds(60)) {
                var held: [RawConnection] = []
                defer { for connection in held { connection.close() } }
                for _ in 0..<6 {
                    let connection = try await RawConnection.connect(port: relay.port)
                    held.append(connection)
                    guard await connection.sendIfOpen(Array(get("/livez").utf8)),
                        (try? await connection.readResponse(timeout: .seconds(10)))??.status == 200
                    else { return false }
                }
                return true
            }
            #expect(sixFit, "authenticated sockets still hold places under MAX_HTTP_CONNECTIONS")
            await paired.phone.disconnect()
            await paired.desktop.disconnect()
        }
    }

    // MARK: WebSocket framing (RFC 6455)

    @Test func frameWithRSV1IsAProtocolError() async throws {
        try await withWebSocket { connection in
            try await connection.sendFrame(opcode: WSOpcode.text, payload: Array("{}".utf8), rsv: 0b100)
            try await expectCloseCode(connection, 1002)
        }
    }

    @Test func unmaskedClientFrameIsAProtocolError() async throws {
        try await withWebSocket { connection in
            try await connection.sendFrame(
                opcode: WSOpcode.text, payload: Array(#"{"type":"relay.auth","token":"\#(opaque())"}"#.utf8), masked: false)
            try await expectCloseCode(connection, 1002)
        }
    }

    @Test(arguments: [UInt16(1005), 999, 1004])
    func closeFrameWithAnInvalidCodeIsAProtocolError(_ code: UInt16) async throws {
        try await withWebSocket { connection in
            try await connection.sendFrame(opcode: WSOpcode.close, payload: [UInt8(code >> 8), UInt8(code & 0xFF)])
            try await expectCloseCode(connection, 1002)
        }
    }

    @Test func oversizedOrFragmentedControlFramesAreProtocolErrors() async throws {
        try await withWebSocket { connection in
            try await connection.sendFrame(opcode: WSOpcode.ping, payload: [UInt8](repeating: 0x61, count: 126))
            try await expectCloseCode(connection, 1002)
        }
        try await withWebSocket { connection in
            try await connection.sendFrame(opcode: WSOpcode.ping, payload: Array("hi".utf8), fin: false)
            try await expectCloseCode(connection, 1002)
        }
    }

    @Test func closeFrameWithAReasonThatIsNotUTF8IsClosed1007() async throws {
        try await withWebSocket { connection in
            try await connection.sendFrame(opcode: WSOpcode.close, payload: [0x03, 0xE8, 0xC3, 0x28])
            try await expectCloseCode(connection, 1007)
        }
    }

    @Test func validCloseCodesAreEchoed() async throws {
        for code: UInt16 in [1000, 1001, 3000, 4999] {
            try await withWebSocket { connection in
                try await connection.sendFrame(opcode: WSOpcode.close, payload: [UInt8(code >> 8), UInt8(code & 0xFF)])
                try await expectCloseCode(connection, code)
            }
        }
    }

    @Test func closeFrameWithAOneBytePayloadIsAProtocolError() async throws {
        try await withWebSocket { connection in
            try await connection.sendFrame(opcode: WSOpcode.close, payload: [0x03])
            try await expectCloseCode(connection, 1002)
        }
    }

    @Test func fragmentedMessageOverTheLimitIsClosedAsTooBig() async throws {
        try await withWebSocket({ $0["MAX_WS_MESSAGE_BYTES"] = "1024" }) { connection in
            let piece = [UInt8](repeating: UInt8(ascii: "a"), count: 600)
            try await connection.sendFrame(opcode: WSOpcode.text, payload: piece, fin: false)
            // The server may end the connection before the later fragments arrive.
            for fin in [false, true] {
                await connection.sendIfOpen(
                    RawConnection.encodeFrame(opcode: WSOpcode.continuation, payload: piece, fin: fin, masked: true, rsv: 0))
            }
            try await expectCloseCode(connection, 1009)
        }
    }

    @Test func singleOversizedFrameBeforeAuthIsClosedAsTooBig() async throws {
        try await withWebSocket({ $0["MAX_WS_MESSAGE_BYTES"] = "1024" }) { connection in
            try await connection.sendFrame(opcode: WSOpcode.text, payload: [UInt8](repeating: UInt8(ascii: "a"), count: 2048))
            try await expectCloseCode(connection, 1009)
        }
    }

    @Test func framesQueuedBehindTheAuthFrameAreBoundedInCount() async throws {
        try await withWebSocket { connection in
            // The auth frame and 20 more in one write: they are read in one go, before the auth
            // lookup can finish on the socket's event loop, so past the bound the socket is cut.
            var bytes = RawConnection.encodeFrame(
                opcode: WSOpcode.text, payload: Array(#"{"type":"relay.auth","token":"\#(opaque())"}"#.utf8), fin: true, masked: true, rsv: 0)
            for index in 0..<20 {
                bytes += RawConnection.encodeFrame(opcode: WSOpcode.text, payload: Array("{\"n\":\(index)}".utf8), fin: true, masked: true, rsv: 0)
            }
            try await connection.send(bytes)
            let frames = try await connection.readFramesUntilClose()
            #expect(frames.first?.text == #"{"reason":"socket_rate_limited","type":"disconnect"}"#, "\(frames)")
            #expect(frames.last?.closeCode == 1008, "\(frames)")
        }
    }

    // MARK: Test support

    @Test func webSocketAcceptMatchesTheRFC6455Example() {
        #expect(RawConnection.webSocketAccept(key: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(SHA1.hash([]).map { String(format: "%02x", $0) }.joined() == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }
}

// MARK: - Requests

/// A request the server must refuse with a 4xx and then close the connection (RFC 9112).
enum MalformedRequest: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case negativeContentLength
    case overflowingContentLength
    case contentLengthWithChunked
    case controlByteInHeaderValue
    case headerLineWithoutColon
    case obsFoldedHeaderLine

    var testDescription: String { rawValue }

    /// The request as sent.
    var bytes: [UInt8] {
        let post = "POST /pair/start HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        let get = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        let text: String
        switch self {
        case .negativeContentLength: text = post + "Content-Length: -1\r\n\r\n{}"
        case .overflowingContentLength: text = post + "Content-Length: 99999999999999999999999\r\n\r\n{}"
        case .contentLengthWithChunked: text = post + "Content-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        case .controlByteInHeaderValue: text = get + "X-Bad: a\u{01}b\r\n\r\n"
        case .headerLineWithoutColon: text = get + "NoColonHere\r\n\r\n"
        case .obsFoldedHeaderLine: text = get + "X-Folded: first\r\n second\r\n\r\n"
        }
        return Array(text.utf8)
    }

    /// The acceptable refusals: 400 for bad framing; an overflowing length may also be "too large".
    var statuses: Set<Int> {
        self == .overflowingContentLength ? [400, 413] : [400]
    }
}

/// `GET path` over HTTP/1.1 with a Host header and `headers`.
private func get(_ path: String, headers: [(String, String)] = []) -> String {
    "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers.map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n"
}

/// `POST path` with `body` and its Content-Length.
private func post(_ path: String, _ body: String, contentType: String = "application/json") -> String {
    "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

/// A valid `/pair/start` body for a fresh session.
private func pairStartBody() -> String {
    #"{"sessionID":"\#(opaque(22))","joinToken":"\#(opaque())","desktopSessionToken":"\#(opaque())","joinTokenExpiresAt":"\#(futureTimestamp())"}"#
}

// MARK: - Expectations

/// Reads the refusal: a response with one of `statuses`, then the server closes. Returns the status.
@discardableResult
private func expectRefusedAndClosed(
    _ connection: RawConnection, statuses: Set<Int>, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> Int? {
    let response = try await connection.readResponse()
    #expect(response.map { statuses.contains($0.status) } == true,
        "expected \(statuses.sorted()), got \(response.map(String.init(describing:)) ?? "the connection closed without a response")",
        sourceLocation: sourceLocation)
    #expect(try await connection.waitForClose(), "the connection stayed open after the refusal; \(connection.stateDescription)",
        sourceLocation: sourceLocation)
    return response?.status
}

/// After an error response the connection is either closed or answers a `GET /healthz`; never silent.
private func expectClosedOrAnswering(_ connection: RawConnection, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    guard await connection.sendIfOpen(Array(get("/healthz").utf8)) else { return }
    if let response = try await connection.readResponse() {
        #expect(response.status == 200, "the next request on the kept connection got \(response)", sourceLocation: sourceLocation)
    }
}

/// The connection ended with nothing received, or with a 408 alone.
private func expectNothingOr408(_ connection: RawConnection, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let bytes = connection.received
    guard !bytes.isEmpty else { return }
    let parsed = try RawHTTPParser.parseResponse(bytes, forHEAD: false, closed: true)
    #expect(parsed?.0.status == 408, "before closing the server sent \(escapedBytes(bytes))", sourceLocation: sourceLocation)
}

/// `relay_http_rejections_total{reason}` reaches `before + count` (counters may be updated just after the close).
private func expectRejectionsGrow(
    _ relay: TestRelay, _ reason: String, from before: Double, by count: Double, sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    var last = before
    let grew = await eventually(timeout: .seconds(30)) {
        last = (try? await relay.httpRejections(reason)) ?? last
        return last >= before + count
    }
    #expect(grew, "relay_http_rejections_total{reason=\"\(reason)\"} went from \(before) to \(last), expected +\(count)",
        sourceLocation: sourceLocation)
}

/// An unknown token gets the `session_expired` disconnect then a close frame 1008 (PROTOCOL §4.2).
private func expectUnknownTokenGetsSessionExpired(_ connection: RawConnection, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    try await connection.sendText(#"{"type":"relay.auth","token":"\#(opaque())"}"#)
    let first = try await connection.readFrame()
    #expect(first?.text == #"{"reason":"session_expired","type":"disconnect"}"#, "got \(first.map(String.init(describing:)) ?? "end of connection")",
        sourceLocation: sourceLocation)
    let second = try await connection.readFrame()
    #expect(second?.closeCode == 1008, "got \(second.map(String.init(describing:)) ?? "end of connection")", sourceLocation: sourceLocation)
}

/// The server ends `connection` within `bound` (a 408 before the close is allowed) and counts it
/// as `reason`.
private func expectTimedOut(
    _ connection: RawConnection, _ relay: TestRelay, _ reason: String, from before: Double, within bound: Duration,
    _ message: Comment, sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    #expect(try await connection.waitForClose(timeout: bound), message, sourceLocation: sourceLocation)
    try expectNothingOr408(connection, sourceLocation: sourceLocation)
    try await expectRejectionsGrow(relay, reason, from: before, by: 1, sourceLocation: sourceLocation)
}

/// Reads until the server's close frame, expects `code`, answers it, and expects the TCP close.
private func expectCloseCode(_ connection: RawConnection, _ code: UInt16, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let frames = try await connection.readFramesUntilClose()
    let close = frames.last { $0.opcode == WSOpcode.close }
    #expect(close?.closeCode == code, "expected a close frame \(code); frames: \(frames), \(connection.stateDescription)",
        sourceLocation: sourceLocation)
    if let close {
        _ = await connection.sendIfOpen(
            RawConnection.encodeFrame(opcode: WSOpcode.close, payload: Array(close.payload.prefix(2)), fin: true, masked: true, rsv: 0))
    }
    #expect(try await connection.waitForClose(), "the TCP connection stayed open after the close handshake", sourceLocation: sourceLocation)
}

// MARK: - Setup

/// A relay whose only short HTTP timeout is `variable` (the other two are a minute).
private func withShortTimeout(_ variable: String, _ millis: Int, _ body: (TestRelay) async throws -> Void) async throws {
    try await withRelay({ env in
        for name in ["HTTP_IDLE_TIMEOUT_MS", "HTTP_HEADER_TIMEOUT_MS", "HTTP_BODY_TIMEOUT_MS"] { env[name] = "60000" }
        env[variable] = "\(millis)"
    }, body)
}

/// Runs `body` with a raw connection upgraded to a WebSocket (not authenticated) on a fresh relay.
private func withWebSocket(
    _ configure: (inout [String: String]) -> Void = { _ in }, _ body: (RawConnection) async throws -> Void
) async throws {
    try await withRelay(configure) { relay in
        let connection = try await RawConnection.connect(port: relay.port)
        defer { connection.close() }
        try await connection.upgradeToWebSocket()
        try await body(connection)
    }
}

/// Opens `count` connections, 50 at a time, each sending `bytes` first when given.
private func openConnections(_ count: Int, port: Int, sending bytes: [UInt8]? = nil) async throws -> [RawConnection] {
    var opened: [RawConnection] = []
    while opened.count < count {
        let batch = min(50, count - opened.count)
        opened += try await withThrowingTaskGroup(of: RawConnection.self) { group in
            for _ in 0..<batch {
                group.addTask {
                    let connection = try await RawConnection.connect(port: port)
                    if let bytes { try await connection.send(bytes) }
                    return connection
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }
    return opened
}

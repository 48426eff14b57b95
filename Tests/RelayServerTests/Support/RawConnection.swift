// A raw TCP client for byte-exact HTTP/1.1 and RFC 6455 tests: it sends exactly the bytes it is
// given and parses what comes back itself, so malformed requests, pipelining and hand-built frames
// reach the server as written. Every wait has a deadline; nothing blocks a thread.

import Foundation
import NIOCore
import NIOPosix
import RelayTestClient
import RelayLocalCluster
import RelayTestSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Connection

/// One client TCP connection to a test relay, with every received byte buffered for parsing.
///
/// Readers consume the buffer in order (``readResponse(timeout:forHEAD:)``, ``readFrame(timeout:)``);
/// bytes after what was parsed stay buffered for the next read. Use it from one task at a time.
final class RawConnection: Sendable {
    /// The port this connection went to.
    let port: Int
    private let channel: any Channel
    private let inbox: RawInbox

    private init(port: Int, channel: any Channel, inbox: RawInbox) {
        self.port = port
        self.channel = channel
        self.inbox = inbox
    }

    deinit {
        channel.close(promise: nil)
    }

    /// Opens a TCP connection to `host:port`; throws `TestFailure` if that takes longer than `timeout`.
    static func connect(port: Int, host: String = "127.0.0.1", timeout: Duration = .seconds(10)) async throws -> RawConnection {
        let inbox = RawInbox()
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(TimeAmount(timeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(RawInboundHandler(inbox: inbox))
                    }
                }
                .connect(host: host, port: port)
                .get()
            return RawConnection(port: port, channel: channel, inbox: inbox)
        } catch {
            throw TestFailure("could not connect to \(host):\(port) within \(timeout): \(error)")
        }
    }

    // MARK: State

    /// Every byte received so far, parsed or not.
    var received: [UInt8] { inbox.snapshot { $0.bytes } }

    /// The received bytes no read has consumed yet.
    var unread: [UInt8] { inbox.snapshot { Array($0.bytes[$0.offset...]) } }

    /// Whether the connection has ended (closed by the server, by ``close()``, or by an error).
    var isClosed: Bool { inbox.snapshot { $0.closed } }

    /// What the connection has seen, for failure messages.
    var stateDescription: String { inbox.snapshot { $0.description } }

    // MARK: Sending

    /// Writes `bytes` and waits until they are handed to the kernel; throws `TestFailure` on a
    /// closed connection or when `timeout` passes first (the server stopped reading).
    func send(_ bytes: [UInt8], timeout: Duration = .seconds(10)) async throws {
        let eventLoop = channel.eventLoop
        let promise = eventLoop.makePromise(of: Void.self)
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            promise.fail(TestFailure("timed out after \(timeout) writing \(bytes.count) bytes (the server stopped reading)"))
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        channel.writeAndFlush(ByteBuffer(bytes: bytes)).cascade(to: promise)
        do {
            try await promise.futureResult.get()
        } catch let failure as TestFailure {
            throw TestFailure("\(failure.description); \(stateDescription)")
        } catch {
            throw TestFailure("writing \(bytes.count) bytes failed: \(error); \(stateDescription)")
        }
    }

    /// Writes `string` as UTF-8, like the byte-array `send`.
    func send(_ string: String, timeout: Duration = .seconds(10)) async throws {
        try await send(Array(string.utf8), timeout: timeout)
    }

    /// Writes `bytes` if the connection is still open; false when it is closed or the write fails.
    @discardableResult
    func sendIfOpen(_ bytes: [UInt8], timeout: Duration = .seconds(10)) async -> Bool {
        guard !isClosed else { return false }
        do {
            try await send(bytes, timeout: timeout)
            return true
        } catch {
            return false
        }
    }

    /// Writes `bytes` in pieces, stopping early once the server answered or closed (so a server that
    /// refuses a huge request part way is not flooded further); returns how many bytes were sent.
    @discardableResult
    func sendInPieces(_ bytes: [UInt8], pieceSize: Int = 4096, timeout: Duration = .seconds(10)) async -> Int {
        var sent = 0
        while sent < bytes.count {
            guard unread.isEmpty, !isClosed else { break }
            let end = min(sent + pieceSize, bytes.count)
            guard await sendIfOpen(Array(bytes[sent..<end]), timeout: timeout) else { break }
            sent = end
        }
        return sent
    }

    /// Closes the connection from this side (no-op when already closed).
    func close() {
        channel.close(promise: nil)
    }

    // MARK: Reading

    /// Parses the next HTTP/1.x response from the buffer, waiting for it to be complete.
    ///
    /// - Parameter forHEAD: The response answers a HEAD request: it has no body whatever its headers say.
    /// - Returns: The response, or `nil` when the connection ended with no further byte.
    /// - Throws: `TestFailure` when `timeout` passes first, when the connection ends part way through
    ///   a response, or when the bytes are not an HTTP response.
    func readResponse(timeout: Duration = .seconds(10), forHEAD: Bool = false) async throws -> RawHTTPResponse? {
        let outcome: ReadOutcome<RawHTTPResponse>? = try await inbox.wait(timeout: timeout, on: channel.eventLoop) { state in
            let pending = Array(state.bytes[state.offset...])
            if pending.isEmpty { return state.closed ? .ended : nil }
            guard let (response, used) = try RawHTTPParser.parseResponse(pending, forHEAD: forHEAD, closed: state.closed) else {
                return nil
            }
            state.offset += used
            return .value(response)
        }
        switch outcome {
        case .value(let response)?: return response
        case .ended?: return nil
        case nil: throw TestFailure("timed out after \(timeout) waiting for an HTTP response; \(stateDescription)")
        }
    }

    /// Waits for the connection to end (normally: the server closing it); true if it did within `timeout`.
    func waitForClose(timeout: Duration = .seconds(10)) async throws -> Bool {
        let closed: Bool? = try await inbox.wait(timeout: timeout, on: channel.eventLoop) { $0.closed ? true : nil }
        return closed ?? false
    }
}

/// What a read found: a parsed value, or the end of the connection with nothing left.
enum ReadOutcome<Value: Sendable>: Sendable {
    case value(Value)
    case ended
}

// MARK: - WebSocket over a raw connection

/// WebSocket opcodes (RFC 6455 §5.2).
enum WSOpcode {
    static let continuation: UInt8 = 0x0
    static let text: UInt8 = 0x1
    static let binary: UInt8 = 0x2
    static let close: UInt8 = 0x8
    static let ping: UInt8 = 0x9
    static let pong: UInt8 = 0xA
}

/// One WebSocket frame as read off the wire (payload already unmasked).
struct RawWebSocketFrame: Sendable, CustomStringConvertible {
    let fin: Bool
    /// The three RSV bits, RSV1 as 4.
    let rsv: UInt8
    let opcode: UInt8
    let masked: Bool
    let payload: [UInt8]

    /// The status code of a close frame with a payload of two bytes or more.
    var closeCode: UInt16? {
        guard opcode == WSOpcode.close, payload.count >= 2 else { return nil }
        return UInt16(payload[0]) << 8 | UInt16(payload[1])
    }

    /// The reason text of a close frame.
    var closeReason: String? {
        guard opcode == WSOpcode.close, payload.count >= 2 else { return nil }
        return String(decoding: payload.dropFirst(2), as: UTF8.self)
    }

    /// The payload of a text frame as a string.
    var text: String? { opcode == WSOpcode.text ? String(decoding: payload, as: UTF8.self) : nil }

    var description: String {
        if opcode == WSOpcode.close { return "close(\(closeCode.map(String.init) ?? "none") \(closeReason ?? ""))" }
        if let text { return "text(\(text.prefix(200)))" }
        return "frame(opcode \(opcode), fin \(fin), \(payload.count) bytes)"
    }
}

extension RawConnection {
    /// The `Sec-WebSocket-Accept` value for `key` (RFC 6455 §4.2.2).
    static func webSocketAccept(key: String) -> String {
        Data(SHA1.hash(Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
    }

    /// Sends an RFC 6455 upgrade request on this connection and checks the answer: 101 with the
    /// right `Sec-WebSocket-Accept`. Bytes after the 101 stay buffered for ``readFrame(timeout:)``.
    ///
    /// - Throws: `TestFailure` describing any other answer.
    @discardableResult
    func upgradeToWebSocket(path: String = "/ws", headers: [(String, String)] = [], timeout: Duration = .seconds(10)) async throws -> RawHTTPResponse {
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try await send(request)
        guard let response = try await readResponse(timeout: timeout) else {
            throw TestFailure("the connection ended instead of answering the WebSocket upgrade; \(stateDescription)")
        }
        guard response.status == 101 else { throw TestFailure("the WebSocket upgrade got \(response.status), not 101: \(response)") }
        let expected = Self.webSocketAccept(key: key)
        guard response.header("sec-websocket-accept") == expected else {
            throw TestFailure("Sec-WebSocket-Accept is \(response.header("sec-websocket-accept") ?? "missing"), expected \(expected)")
        }
        guard response.header("upgrade")?.lowercased() == "websocket" else {
            throw TestFailure("the 101 has Upgrade: \(response.header("upgrade") ?? "missing")")
        }
        return response
    }

    /// Sends one frame built exactly as described (RFC 6455 §5.2); `rsv` is the three RSV bits (RSV1 = 4).
    func sendFrame(opcode: UInt8, payload: [UInt8] = [], fin: Bool = true, masked: Bool = true, rsv: UInt8 = 0) async throws {
        try await send(Self.encodeFrame(opcode: opcode, payload: payload, fin: fin, masked: masked, rsv: rsv))
    }

    /// Sends one masked text frame.
    func sendText(_ text: String) async throws {
        try await sendFrame(opcode: WSOpcode.text, payload: Array(text.utf8))
    }

    /// The wire bytes of one frame.
    static func encodeFrame(opcode: UInt8, payload: [UInt8], fin: Bool, masked: Bool, rsv: UInt8) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv & 0x7) << 4 | (opcode & 0x0F)]
        let maskBit: UInt8 = masked ? 0x80 : 0
        switch payload.count {
        case ..<126:
            bytes.append(maskBit | UInt8(payload.count))
        case ..<65536:
            bytes.append(maskBit | 126)
            bytes += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default:
            bytes.append(maskBit | 127)
            bytes += (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(payload.count) >> (UInt64($0) * 8)) }
        }
        if masked {
            let key = (0..<4).map { _ in UInt8.random(in: 0...255) }
            bytes += key
            bytes += payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
        } else {
            bytes += payload
        }
        return bytes
    }

    /// The next frame from the buffer; `nil` when the connection ended with no further byte.
    ///
    /// - Throws: `TestFailure` when `timeout` passes first or the connection ends mid-frame.
    func readFrame(timeout: Duration = .seconds(10)) async throws -> RawWebSocketFrame? {
        let outcome: ReadOutcome<RawWebSocketFrame>? = try await inbox.wait(timeout: timeout, on: channel.eventLoop) { state in
            let pending = Array(state.bytes[state.offset...])
            if pending.isEmpty { return state.closed ? .ended : nil }
            guard let (frame, used) = try RawWebSocketParser.parseFrame(pending) else {
                if state.closed { throw TestFailure("the connection ended mid-frame: \(escapedBytes(pending))") }
                return nil
            }
            state.offset += used
            return .value(frame)
        }
        switch outcome {
        case .value(let frame)?: return frame
        case .ended?: return nil
        case nil: throw TestFailure("timed out after \(timeout) waiting for a WebSocket frame; \(stateDescription)")
        }
    }

    /// Reads frames until a close frame (included, last) or the end of the connection.
    ///
    /// - Throws: `TestFailure` when neither happens within `timeout`.
    func readFramesUntilClose(timeout: Duration = .seconds(10)) async throws -> [RawWebSocketFrame] {
        let deadline = ContinuousClock.now + timeout
        var frames: [RawWebSocketFrame] = []
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                throw TestFailure("no close frame nor end of connection within \(timeout); frames so far: \(frames)")
            }
            guard let frame = try await readFrame(timeout: remaining) else { return frames }
            frames.append(frame)
            if frame.opcode == WSOpcode.close { return frames }
        }
    }
}

// MARK: - HTTP response parsing

/// One HTTP/1.x response as read off the wire.
struct RawHTTPResponse: Sendable, CustomStringConvertible {
    /// The status line's version, e.g. `HTTP/1.1`.
    let version: String
    let status: Int
    let reason: String
    /// Header fields in wire order, names as sent.
    let headers: [(String, String)]
    let body: [UInt8]

    /// The first value of header `name` (case-insensitive).
    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// Whether header `name` lists `token` (case-insensitive, comma-separated values).
    func headerHasToken(_ name: String, _ token: String) -> Bool {
        headers.filter { $0.0.lowercased() == name.lowercased() }
            .flatMap { $0.1.split(separator: ",") }
            .contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == token.lowercased() }
    }

    /// The body as UTF-8 text.
    var bodyText: String { String(decoding: body, as: UTF8.self) }

    var description: String {
        let fields = headers.map { "\($0.0): \($0.1)" }.joined(separator: ", ")
        return "\(version) \(status) \(reason) [\(fields)] body \(body.count) bytes: \(escapedBytes(body, limit: 200))"
    }
}

/// HTTP/1.1 response framing (RFC 9112 §4, §6), incremental: `nil` means "not complete yet".
enum RawHTTPParser {
    private static let crlf: [UInt8] = [13, 10]

    /// Parses one response at the start of `bytes`; returns it with the number of bytes it used, or
    /// `nil` while incomplete. `closed` says no more bytes will come (a body without length ends there).
    static func parseResponse(_ bytes: [UInt8], forHEAD: Bool, closed: Bool) throws -> (RawHTTPResponse, Int)? {
        guard let headEnd = find([13, 10, 13, 10], in: bytes, from: 0) else {
            if closed { throw TestFailure("the connection ended inside a response head: \(escapedBytes(bytes))") }
            return nil
        }
        let lines = String(decoding: bytes[..<headEnd], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), statusParts[1].count == 3,
            let status = Int(statusParts[1])
        else {
            throw TestFailure("not an HTTP/1.x status line: \(escapedBytes(bytes))")
        }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else {
                throw TestFailure("response header line without a colon: \(escapedBytes(Array(line.utf8)))")
            }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let response = { (body: [UInt8]) in
            RawHTTPResponse(
                version: String(statusParts[0]), status: status, reason: statusParts.count > 2 ? String(statusParts[2]) : "",
                headers: headers, body: body)
        }
        let bodyStart = headEnd + 4
        if forHEAD || (100..<200).contains(status) || status == 204 || status == 304 {
            return (response([]), bodyStart)
        }
        let value = { (name: String) in headers.first { $0.0.lowercased() == name }?.1 }
        if let encoding = value("transfer-encoding"), encoding.lowercased().contains("chunked") {
            guard let (body, end) = try parseChunked(bytes, from: bodyStart) else {
                if closed { throw TestFailure("the connection ended inside a chunked body: \(escapedBytes(bytes))") }
                return nil
            }
            return (response(body), end)
        }
        if let lengthText = value("content-length") {
            guard let length = Int(lengthText), length >= 0 else { throw TestFailure("bad response Content-Length \(lengthText)") }
            guard bytes.count - bodyStart >= length else {
                if closed {
                    throw TestFailure("the connection ended after \(bytes.count - bodyStart) of \(length) body bytes: \(escapedBytes(bytes))")
                }
                return nil
            }
            return (response(Array(bytes[bodyStart..<bodyStart + length])), bodyStart + length)
        }
        // No framing: the body runs to the end of the connection (RFC 9112 §6.3 item 8).
        guard closed else { return nil }
        return (response(Array(bytes[bodyStart...])), bytes.count)
    }

    /// A chunked body starting at `start`: its decoded bytes and the index after its trailer section.
    static func parseChunked(_ bytes: [UInt8], from start: Int) throws -> ([UInt8], Int)? {
        var body: [UInt8] = []
        var index = start
        while true {
            guard let lineEnd = find(crlf, in: bytes, from: index) else { return nil }
            let line = String(decoding: bytes[index..<lineEnd], as: UTF8.self)
            let sizeText = line.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let size = Int(sizeText, radix: 16), size >= 0 else { throw TestFailure("bad chunk size line \"\(line)\"") }
            index = lineEnd + 2
            if size == 0 {
                while true {
                    guard let end = find(crlf, in: bytes, from: index) else { return nil }
                    if end == index { return (body, end + 2) }
                    index = end + 2
                }
            }
            guard bytes.count >= index + size + 2 else { return nil }
            body += bytes[index..<index + size]
            guard bytes[index + size] == 13, bytes[index + size + 1] == 10 else {
                throw TestFailure("chunk of \(size) bytes not followed by CRLF")
            }
            index += size + 2
        }
    }

    /// The index of the first occurrence of `needle` in `bytes` at or after `from`.
    static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int) -> Int? {
        guard bytes.count >= needle.count, from <= bytes.count - needle.count else { return nil }
        outer: for i in from...(bytes.count - needle.count) {
            for j in 0..<needle.count where bytes[i + j] != needle[j] { continue outer }
            return i
        }
        return nil
    }
}

/// RFC 6455 §5.2 frame parsing, incremental: `nil` means "not complete yet".
enum RawWebSocketParser {
    /// Parses one frame at the start of `bytes`; returns it with the number of bytes it used.
    static func parseFrame(_ bytes: [UInt8]) throws -> (RawWebSocketFrame, Int)? {
        guard bytes.count >= 2 else { return nil }
        let masked = bytes[1] & 0x80 != 0
        var length = Int(bytes[1] & 0x7F)
        var index = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            index = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            let wide = bytes[2..<10].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard wide < 1 << 32 else { throw TestFailure("server frame claims \(wide) payload bytes") }
            length = Int(wide)
            index = 10
        }
        var key: [UInt8] = []
        if masked {
            guard bytes.count >= index + 4 else { return nil }
            key = Array(bytes[index..<index + 4])
            index += 4
        }
        guard bytes.count >= index + length else { return nil }
        var payload = Array(bytes[index..<index + length])
        if masked { payload = payload.enumerated().map { $0.element ^ key[$0.offset % 4] } }
        let frame = RawWebSocketFrame(
            fin: bytes[0] & 0x80 != 0, rsv: (bytes[0] >> 4) & 0x7, opcode: bytes[0] & 0x0F, masked: masked, payload: payload)
        return (frame, index + length)
    }
}

// MARK: - SHA-1

/// SHA-1 (FIPS 180-4), only for `Sec-WebSocket-Accept`; Foundation on Linux has no CommonCrypto.
enum SHA1 {
    /// The 20-byte digest of `message`.
    static func hash(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
        var padded = message
        padded.append(0x80)
        while padded.count % 64 != 56 { padded.append(0) }
        let bitLength = UInt64(message.count) * 8
        padded += (0..<8).reversed().map { UInt8(truncatingIfNeeded: bitLength >> (UInt64($0) * 8)) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: padded.count, by: 64) {
            for t in 0..<16 {
                let i = chunk + 4 * t
                w[t] = UInt32(padded[i]) << 24 | UInt32(padded[i + 1]) << 16 | UInt32(padded[i + 2]) << 8 | UInt32(padded[i + 3])
            }
            for t in 16..<80 { w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1) }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for t in 0..<80 {
                let f: UInt32
                let k: UInt32
                switch t {
                case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A82_7999)
                case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9_EBA1)
                case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                default: (f, k) = (b ^ c ^ d, 0xCA62_C1D6)
                }
                let temp = rotl(a, 5) &+ f &+ e &+ k &+ w[t]
                (e, d, c, b, a) = (d, c, rotl(b, 30), a, temp)
            }
            h[0] &+= a
            h[1] &+= b
            h[2] &+= c
            h[3] &+= d
            h[4] &+= e
        }
        return h.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32($0))) } }
    }

    private static func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}

// MARK: - Prometheus and process helpers

extension TestRelay {
    /// `GET /metricsz` as Prometheus text.
    ///
    /// Under a `MAX_HTTP_CONNECTIONS` cap the scrape's own connection may be refused while the
    /// test's connections are still closing on the server's side: it is made again until the
    /// relay answers (within 30 s), as a scraper would on its next interval.
    func prometheusText() async throws -> String {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            do {
                return try await http.get("/metricsz", headers: [("Accept", "text/plain")], timeout: .seconds(10)).bodyText
            } catch {
                guard ContinuousClock.now < deadline else { throw error }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// The `relay_http_rejections_total{reason="…"}` sample (0 when absent). The metrics system is
    /// the test process's: compare before and after, expecting growth of at least what this test did.
    func httpRejections(_ reason: String) async throws -> Double {
        prometheusSampleValue(try await prometheusText(), "relay_http_rejections_total{reason=\"\(reason)\"}")
    }
}

/// Raises this process's open-file soft limit to at least `needed`, up to the hard limit; throws
/// `TestFailure` when the hard limit is below `needed`.
func raiseOpenFileLimit(atLeast needed: Int) throws {
    #if canImport(Darwin)
    let resource = RLIMIT_NOFILE
    #else
    let resource = Int32(RLIMIT_NOFILE.rawValue)
    #endif
    var limits = rlimit()
    guard getrlimit(resource, &limits) == 0 else { throw TestFailure("getrlimit(RLIMIT_NOFILE) failed: errno \(errno)") }
    let wanted = rlim_t(needed)
    if limits.rlim_cur >= wanted { return }
    guard limits.rlim_max == rlim_t.max || limits.rlim_max >= wanted else {
        throw TestFailure("this test needs \(needed) open files but the hard limit (ulimit -Hn) is \(limits.rlim_max)")
    }
    limits.rlim_cur = limits.rlim_max == rlim_t.max ? wanted : limits.rlim_max
    guard setrlimit(resource, &limits) == 0 else { throw TestFailure("setrlimit(RLIMIT_NOFILE, \(limits.rlim_cur)) failed: errno \(errno)") }
}

/// `bytes` as readable text for failure messages: printable ASCII as is, the rest escaped, cut at `limit`.
func escapedBytes(_ bytes: some Collection<UInt8>, limit: Int = 400) -> String {
    var text = ""
    for byte in bytes.prefix(limit) {
        switch byte {
        case 13: text += "\\r"
        case 10: text += "\\n"
        case 0x20..<0x7F: text.unicodeScalars.append(Unicode.Scalar(byte))
        default: text += String(format: "\\x%02X", byte)
        }
    }
    return bytes.count > limit ? text + "…(\(bytes.count) bytes)" : text
}

// MARK: - Plumbing

/// The received bytes of one connection and the readers waiting on them.
///
/// Filled on the event loop; read by one task. A reader parks a continuation that the next arrival,
/// the end of the connection or its own event-loop timer resumes; each waiter is removed under the
/// lock before it is resumed, so it is resumed exactly once.
final class RawInbox: Sendable {
    /// What arrived so far.
    struct State: Sendable, CustomStringConvertible {
        var bytes: [UInt8] = []
        /// How many bytes readers have consumed.
        var offset = 0
        var closed = false
        var error: String?
        fileprivate var generation = 0
        fileprivate var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        fileprivate var nextWaiterID = 0

        var description: String {
            let pending = bytes[offset...]
            return "received \(bytes.count) bytes, \(pending.count) unread, "
                + (closed ? "closed\(error.map { " (\($0))" } ?? "")" : "open")
                + (pending.isEmpty ? "" : ", unread: \(escapedBytes(pending))")
        }

        fileprivate mutating func changed() -> [CheckedContinuation<Void, Never>] {
            generation += 1
            defer { waiters = [:] }
            return Array(waiters.values)
        }
    }

    private let state = Mutex(State())

    /// Runs `body` on the state under the lock.
    func snapshot<T: Sendable>(_ body: (State) -> T) -> T {
        state.withLock { body($0) }
    }

    /// Adds bytes read from the socket and wakes the readers.
    func append(_ bytes: [UInt8]) {
        for waiter in state.withLock({ $0.bytes += bytes; return $0.changed() }) { waiter.resume() }
    }

    /// Marks the connection ended (with the error that ended it, if any) and wakes the readers.
    func finish(error: (any Error)? = nil) {
        let waiters = state.withLock { state in
            if state.error == nil, let error { state.error = "\(error)" }
            state.closed = true
            return state.changed()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Runs `step` under the lock now and after every change until it returns a value; `nil` when
    /// `timeout` passes first. `step` may consume bytes by advancing `offset`.
    func wait<T: Sendable>(timeout: Duration, on eventLoop: any EventLoop, _ step: (inout State) throws -> T?) async throws -> T? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (value, generation) = try state.withLock { state throws -> (T?, Int) in (try step(&state), state.generation) }
            if let value { return value }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return nil }
            await park(since: generation, for: remaining, on: eventLoop)
        }
    }

    private func park(since generation: Int, for duration: Duration, on eventLoop: any EventLoop) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id: Int? = state.withLock { state in
                guard state.generation == generation else { return nil }
                let id = state.nextWaiterID
                state.nextWaiterID += 1
                state.waiters[id] = continuation
                return id
            }
            guard let id else {
                continuation.resume()
                return
            }
            eventLoop.scheduleTask(in: TimeAmount(duration)) { self.wake(id) }
        }
    }

    private func wake(_ id: Int) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}

/// Copies inbound bytes into a ``RawInbox`` and reports the end of the connection.
private final class RawInboundHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let inbox: RawInbox

    init(inbox: RawInbox) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.append(Array(unwrapInboundIn(data).readableBytesView))
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        inbox.finish(error: error)
        context.close(promise: nil)
    }
}

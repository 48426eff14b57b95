// One Redis or Sentinel command on loopback, for the redis-failover drill: what an operator types
// into redis-cli (`SENTINEL get-master-addr-by-name relay`, `INFO replication`, `CLIENT KILL`).

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A RESP2 reply.
enum RedisReply: Sendable, CustomStringConvertible {
    case status(String)
    case error(String)
    case integer(Int)
    case bulk(String?)
    case array([RedisReply]?)

    /// A status or bulk string's text.
    var text: String? {
        switch self {
        case .status(let text): text
        case .bulk(let text): text
        default: nil
        }
    }

    var elements: [RedisReply] {
        if case .array(let elements?) = self { elements } else { [] }
    }

    var description: String {
        switch self {
        case .status(let text): text
        case .error(let text): "(error) \(text)"
        case .integer(let value): "(integer) \(value)"
        case .bulk(let text): text ?? "(nil)"
        case .array(let elements): elements.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "(nil)"
        }
    }
}

/// Sends one command to the Redis or Sentinel at 127.0.0.1:`port` on a new connection and reads
/// its reply.
///
/// The blocking socket calls run on a thread of their own, never on a cooperative thread, so a
/// server that does not answer (a stopped replica) costs the drill nothing but this call's time.
///
/// - Returns: the reply, or nil when the server could not be reached or did not answer within
///   `timeout`.
func redisCommand(port: Int, _ arguments: [String], timeout: Duration = .seconds(1)) async -> RedisReply? {
    let milliseconds = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
    return await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: blockingRedisCommand(port: port, arguments, timeoutMilliseconds: milliseconds)) }
        thread.start()
    }
}

private func blockingRedisCommand(port: Int, _ arguments: [String], timeoutMilliseconds: Int) -> RedisReply? {
    #if canImport(Darwin)
    let descriptor = socket(AF_INET, SOCK_STREAM, 0)
    #else
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #endif
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var limit = timeval(tv_sec: .init(timeoutMilliseconds / 1000), tv_usec: .init((timeoutMilliseconds % 1000) * 1000))
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return nil }

    var request = "*\(arguments.count)\r\n"
    for argument in arguments { request += "$\(argument.utf8.count)\r\n\(argument)\r\n" }
    var bytes = Array(request.utf8)
    var sent = 0
    while sent < bytes.count {
        let count = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
        if count < 0, errno == EINTR { continue }
        guard count > 0 else { return nil }
        sent += count
    }
    bytes = []
    var chunk = [UInt8](repeating: 0, count: 16 * 1024)
    let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
    while ContinuousClock.now < deadline {
        var index = 0
        if let reply = parseReply(bytes, &index) { return reply }
        let count = recv(descriptor, &chunk, chunk.count, 0)
        if count < 0, errno == EINTR { continue }
        guard count > 0 else { return nil }
        bytes += chunk[0..<count]
    }
    return nil
}

/// Parses one reply starting at `index`; nil while incomplete.
private func parseReply(_ bytes: [UInt8], _ index: inout Int) -> RedisReply? {
    guard index < bytes.count else { return nil }
    let kind = bytes[index]
    guard let line = readLine(bytes, from: index + 1) else { return nil }
    index = line.next
    switch kind {
    case UInt8(ascii: "+"): return .status(line.text)
    case UInt8(ascii: "-"): return .error(line.text)
    case UInt8(ascii: ":"): return .integer(Int(line.text) ?? 0)
    case UInt8(ascii: "$"):
        guard let length = Int(line.text) else { return nil }
        guard length >= 0 else { return .bulk(nil) }
        guard index + length + 2 <= bytes.count else { return nil }
        let text = String(decoding: bytes[index..<index + length], as: UTF8.self)
        index += length + 2
        return .bulk(text)
    case UInt8(ascii: "*"):
        guard let count = Int(line.text) else { return nil }
        guard count >= 0 else { return .array(nil) }
        var elements: [RedisReply] = []
        for _ in 0..<count {
            guard let element = parseReply(bytes, &index) else { return nil }
            elements.append(element)
        }
        return .array(elements)
    default:
        return .error("unreadable reply")
    }
}

private func readLine(_ bytes: [UInt8], from start: Int) -> (text: String, next: Int)? {
    var end = start
    while end + 1 < bytes.count {
        if bytes[end] == 13, bytes[end + 1] == 10 { return (String(decoding: bytes[start..<end], as: UTF8.self), end + 2) }
        end += 1
    }
    return nil
}

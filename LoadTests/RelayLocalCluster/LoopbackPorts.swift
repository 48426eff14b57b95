// Loopback ports for local servers: picking a free one, waiting until one accepts.

import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A loopback port nothing is bound to, below the kernel's ephemeral port range.
///
/// Below that range because a client that keeps connecting to a port in it while no server is
/// there can connect to itself (TCP simultaneous open), and the kernel can hand the port out as
/// the local port of some outgoing connection, while a server we stopped is down: either would
/// hold the port the server is about to bind again.
///
/// Free when checked, not reserved: another process may bind it before the server does. This
/// process never hands out one port twice, so servers it starts at the same time (parallel tests,
/// a harness beside a cluster) cannot pick the same port while neither has bound it yet.
///
/// - Parameter excluding: ports not to return, such as ones picked for servers not started yet.
/// - Throws: `LocalClusterError` when no bindable port turns up.
package func freeLoopbackPort(excluding: Set<Int> = []) throws -> Int {
    let ephemeralStart = ephemeralPortRangeStart()
    guard ephemeralStart > 20_100 else { throw LocalClusterError("no port range below \(ephemeralStart) to pick from") }
    for _ in 0..<100 {
        let port = Int.random(in: 20_000..<ephemeralStart)
        guard !excluding.contains(port), handedOut.withLock({ $0.insert(port).inserted }) else { continue }
        if canBind(port: port) { return port }
    }
    throw LocalClusterError("no free loopback port found below \(ephemeralStart)")
}

/// Every port ``freeLoopbackPort(excluding:)`` has returned (or tried) in this process.
private let handedOut = Mutex<Set<Int>>([])

/// Waits (polling every 10 ms) until something accepts TCP connections on 127.0.0.1:`port`.
///
/// - Parameter process: the server expected to listen there; if it ends first, the wait stops.
/// - Throws: `ChildProcessExited` when `process` ended first; `LocalClusterError` after `timeout`.
package func waitUntilAccepting(port: Int, timeout: Duration = .seconds(10), process: ChildProcess? = nil) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if accepts(port: port) { return }
        if let process, let status = process.reap() {
            throw ChildProcessExited(executable: process.executable, status: status)
        }
        guard ContinuousClock.now < deadline else {
            let who = process.map { "\($0.executable) (pid \($0.pid)): " } ?? ""
            throw LocalClusterError("\(who)nothing accepts connections on 127.0.0.1:\(port) after \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// The first port of the kernel's ephemeral range (Linux: /proc; elsewhere 32768).
private func ephemeralPortRangeStart() -> Int {
    guard let file = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r") else { return 32_768 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 64)
    guard fgets(&line, Int32(line.count), file) != nil else { return 32_768 }
    let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32_768
}

private func canBind(port: Int) -> Bool {
    withLoopbackSocket(port: port) { descriptor, address, length in bind(descriptor, address, length) == 0 }
}

private func accepts(port: Int) -> Bool {
    withLoopbackSocket(port: port) { descriptor, address, length in connect(descriptor, address, length) == 0 }
}

/// Runs `body` with a fresh TCP socket and the address 127.0.0.1:`port`; closes the socket after.
private func withLoopbackSocket(
    port: Int, _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Bool
) -> Bool {
    #if canImport(Darwin)
    let descriptor = socket(AF_INET, SOCK_STREAM, 0)
    #else
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #endif
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            body(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
}

// A relay node with one paired session, driven through the core's public API as the transport
// drives it: the allocation benchmarks count what one frame costs on its way to the queues.

import Logging
import RelayCore
import RelayProtocol
import Synchronization

/// A socket's outbound queue as the core sees it: frames are kept until the benchmark clears them,
/// in storage reserved up front, so the queue itself allocates nothing per frame.
final class QueueConnection: RelayConnection {
    let connectionID = Identifiers.shortID()
    private let queue = Mutex<[[UInt8]]>({
        var frames: [[UInt8]] = []
        frames.reserveCapacity(64)
        return frames
    }())

    func send(_ text: [UInt8]) -> SendResult {
        queue.withLock { $0.append(text) }
        return .enqueued
    }

    func terminate(_ reason: DisconnectReason?) {}

    /// The frames waiting now (setup only).
    func queueSnapshot() -> [[UInt8]] { queue.withLock { $0 } }

    /// How many frames wait, then forgets them (keeping the storage).
    @discardableResult
    func drain() -> Int {
        queue.withLock { frames in
            defer { frames.removeAll(keepingCapacity: true) }
            return frames.count
        }
    }
}

enum FixtureError: Error {
    case refused(String)
}

/// One node, one session, its desktop and `phones` phones, all authenticated.
final class PerFrameFixture: Sendable {
    let relay: Relay
    let sessionID: String
    let desktop: QueueConnection
    let desktopEndpoint: any SocketEndpoint
    let phones: [QueueConnection]
    let phoneEndpoints: [any SocketEndpoint]

    private init(
        relay: Relay, sessionID: String, desktop: QueueConnection, desktopEndpoint: any SocketEndpoint, phones: [QueueConnection],
        phoneEndpoints: [any SocketEndpoint]
    ) {
        self.relay = relay
        self.sessionID = sessionID
        self.desktop = desktop
        self.desktopEndpoint = desktopEndpoint
        self.phones = phones
        self.phoneEndpoints = phoneEndpoints
    }

    static let origin = "http://localhost:4173"
    static let meta = RequestMeta(clientIP: "198.51.100.7", origin: nil)

    /// Pairs `phones` devices through the real pairing flow. `bus`: the node is one of a cluster.
    static func make(phones count: Int, bus: (any ClusterBus)? = nil) async throws -> PerFrameFixture {
        var configuration = CoreConfiguration()
        configuration.origins = OriginPolicy(entries: [origin])
        configuration.maxDevicesPerSession = max(2, count)
        // The budgets are per minute; a benchmark sends far more than a phone may.
        configuration.maxRemoteCommandsPerMinute = 1 << 30
        configuration.maxRemoteSessionCommandsPerMinute = 1 << 30
        let relay = Relay(
            configuration: configuration, store: InMemoryStateStore(), bus: bus,
            logger: Logger(label: "relay-benchmarks", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await relay.start()

        let sessionID = Identifiers.random(bytes: 16)
        let desktopToken = Identifiers.random(bytes: 32)
        var joinToken = Identifiers.random(bytes: 32)
        let expires = JSONValue.string(Timestamp.format(millis: wallClockMillis() + 600_000))
        _ = try await relay.pairStart(try PairStartRequest(json: [
            "schemaVersion": 2, "sessionID": .string(sessionID), "joinToken": .string(joinToken),
            "desktopSessionToken": .string(desktopToken), "joinTokenExpiresAt": expires,
        ]), meta: meta)
        let desktop = QueueConnection()
        let desktopEndpoint = try await authenticate(relay, token: desktopToken, connection: desktop, origin: nil)

        var phones: [QueueConnection] = []
        var phoneEndpoints: [any SocketEndpoint] = []
        for index in 0..<count {
            if index > 0 {
                joinToken = Identifiers.random(bytes: 32)
                _ = try await relay.pairRefresh(try PairRefreshRequest(json: [
                    "schemaVersion": 2, "sessionID": .string(sessionID), "joinToken": .string(joinToken),
                    "desktopSessionToken": .string(desktopToken), "joinTokenExpiresAt": expires,
                ]), meta: meta)
            }
            let request = try PairJoinRequest(json: [
                "sessionID": .string(sessionID), "joinToken": .string(joinToken), "deviceName": .string("Benchmark Phone \(index)"),
            ])
            async let joined = relay.pairJoin(request, meta: meta)
            let requestID = try await pairRequestID(on: desktop)
            desktopEndpoint.receive(text: Array(JSONValue.object([
                "type": "relay.pair_decision", "sessionID": .string(sessionID), "requestID": .string(requestID), "approved": true,
            ]).serialized.utf8))
            let body = try JSONValue.parse(try await joined)
            guard let token = body["deviceSessionToken"]?.stringValue else { throw FixtureError.refused("join: \(body)") }
            // The next join's request must not be mistaken for this one.
            desktop.drain()
            let phone = QueueConnection()
            phoneEndpoints.append(try await authenticate(relay, token: token, connection: phone, origin: origin))
            phones.append(phone)
        }
        desktop.drain()
        for phone in phones { phone.drain() }
        return PerFrameFixture(
            relay: relay, sessionID: sessionID, desktop: desktop, desktopEndpoint: desktopEndpoint, phones: phones,
            phoneEndpoints: phoneEndpoints)
    }

    private static func authenticate(_ relay: Relay, token: String, connection: QueueConnection, origin: String?) async throws -> any SocketEndpoint {
        let peer = SocketPeer(remoteIP: "203.0.113.9", origin: origin, userAgent: "relay-benchmarks")
        let outcome = await relay.authenticate(token: token, peer: peer, connection: connection)
        guard case .authenticated(let endpoint) = outcome else { throw FixtureError.refused("auth: \(outcome)") }
        return endpoint
    }

    /// The request id of the `relay.pair_request` the desktop was sent (the join waits for it).
    private static func pairRequestID(on desktop: QueueConnection) async throws -> String {
        for _ in 0..<5_000 {
            if let id = desktop.lastPairRequestID() { return id }
            try await Task.sleep(for: .milliseconds(1))
        }
        throw FixtureError.refused("no relay.pair_request reached the desktop")
    }

    /// The phone's command envelope with `seq`, as the §9.1 harness sends it.
    func command(seq: UInt64) -> [UInt8] {
        Array(("{\"schemaVersion\":2,\"sessionID\":\"\(sessionID)\",\"seq\":\(seq),\"payload\":{\"type\":\"command\","
            + "\"payload\":{\"name\":\"thread.select\",\"commandID\":\"cmd-\(seq)\",\"threadID\":\"thread-1\"}}}").utf8)
    }

    /// A desktop event envelope, about the same size.
    func event(seq: UInt64) -> [UInt8] {
        Array(("{\"schemaVersion\":2,\"sessionID\":\"\(sessionID)\",\"seq\":\(seq),\"timestamp\":\"2026-12-07T00:00:00.000Z\","
            + "\"payload\":{\"type\":\"event\",\"eventID\":\"evt-\(seq)\",\"threadID\":\"thread-1\"}}").utf8)
    }
}

extension QueueConnection {
    /// The `requestID` of the newest `relay.pair_request` queued here, if any (setup only).
    func lastPairRequestID() -> String? {
        let frames = queueSnapshot()
        for frame in frames.reversed() {
            if let value = try? JSONValue.parse(frame), value["type"]?.stringValue == "relay.pair_request" {
                return value["requestID"]?.stringValue
            }
        }
        return nil
    }
}

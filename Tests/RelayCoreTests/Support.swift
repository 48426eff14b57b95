// Shared fixtures for the core tests: a recording socket double and a relay node that can start
// sessions, attach desktops and phones, and pair devices through the real pairing flow.

import Logging
import RelayCore
import RelayProtocol
import Synchronization
import RelayTestSupport
import Testing

/// The browser origin the fixture's relays allow, and the one fixture phones present.
let fixtureOrigin = "http://localhost:4173"

/// The HTTP caller every fixture request comes from.
let fixtureMeta = RequestMeta(clientIP: "198.51.100.7", origin: nil)

/// The transport's stand-in: records every frame the core sends and every termination, and
/// behaves like a closed socket once terminated.
final class RecordingConnection: RelayConnection {
    let connectionID = Identifiers.shortID()
    private let state = Mutex<(frames: [[UInt8]], terminations: [DisconnectReason?])>(([], []))

    func send(_ text: [UInt8]) -> SendResult {
        state.withLock { s in
            guard s.terminations.isEmpty else { return .closed }
            s.frames.append(text)
            return .enqueued
        }
    }

    func terminate(_ reason: DisconnectReason?) {
        state.withLock { $0.terminations.append(reason) }
    }

    /// Every frame received so far, as text.
    var texts: [String] { state.withLock { $0.frames.map { String(decoding: $0, as: UTF8.self) } } }

    /// Every frame received so far, parsed (frames that are not JSON are left out).
    var frames: [JSONValue] {
        state.withLock { $0.frames.compactMap { try? JSONValue.parse($0) } }
    }

    /// Frames whose `type` member is `type`.
    func frames(ofType type: String) -> [JSONValue] { frames.filter { $0["type"]?.stringValue == type } }

    /// The reasons `terminate` was called with, in order.
    var terminations: [DisconnectReason?] { state.withLock { $0.terminations } }

    /// Waits until `count` frames of `type` have arrived; returns the last of them, or nil on
    /// timeout (a bound for a broken relay, generous for a busy machine: it ends with the frame).
    func waitForFrame(ofType type: String, count: Int = 1, timeout: Duration = .seconds(30)) async -> JSONValue? {
        await eventually(timeout: timeout) {
            let matching = self.frames(ofType: type)
            return matching.count >= count ? matching[count - 1] : nil
        }
    }

    /// Waits until the socket has been terminated; false on timeout.
    func waitForTermination(timeout: Duration = .seconds(30)) async -> Bool {
        await eventually(timeout: timeout) { self.terminations.isEmpty ? nil : true } ?? false
    }
}

/// Polls `probe` every millisecond until it yields a value or `timeout` passes.
func eventually<T>(timeout: Duration = .seconds(30), _ probe: () -> T?) async -> T? {
    let deadline = ContinuousClock.now + timeout
    while true {
        if let value = probe() { return value }
        if ContinuousClock.now >= deadline { return nil }
        try? await Task.sleep(for: .milliseconds(1))
    }
}

/// The credentials a desktop registers a session with.
struct TestSession {
    var sessionID = Identifiers.random(bytes: 16)
    var joinToken = Identifiers.random(bytes: 32)
    var desktopToken = Identifiers.random(bytes: 32)
}

/// A desktop socket authenticated on a relay.
struct DesktopLink {
    let connection: RecordingConnection
    let endpoint: any SocketEndpoint
}

/// A phone socket authenticated on a relay, with the token `auth_ok` handed it for next time.
struct MobileLink {
    let connection: RecordingConnection
    let endpoint: any SocketEndpoint
    let nextToken: String
}

/// A device trusted by the real `/pair/join` flow.
struct PairedDevice {
    let deviceID: String
    let token: String
}

/// The reason an auth outcome was rejected with, or nil when it succeeded.
func rejection(_ outcome: AuthOutcome) -> AuthFailureReason? {
    if case .rejected(let reason) = outcome { return reason }
    return nil
}

/// A task that is cancelled when nothing refers to it any more.
final class BackgroundTask: Sendable {
    private let task: Task<Void, Never>
    init(_ body: @escaping @Sendable () async -> Void) { task = Task { await body() } }
    deinit { task.cancel() }
}

/// One relay node with test-sized settings and helpers that drive it like the transport would.
struct RelayNode {
    let relay: Relay
    /// The node's background work (reloads, resyncs, store writes after a close), as the
    /// application's service group would run it; cancelled when the last copy of the node goes.
    /// Its periodic sweep is an hour apart: tests sweep by calling `sweep(now:)`.
    private let work: BackgroundTask

    /// A node with the fixture's allowed origin; `configure` adjusts the rest.
    init(
        store: any StateStore = InMemoryStateStore(), bus: (any ClusterBus)? = nil, clock: any RelayClock = SystemClock(),
        _ configure: (inout CoreConfiguration) -> Void = { _ in }
    ) {
        var configuration = CoreConfiguration()
        configuration.origins = OriginPolicy(entries: [fixtureOrigin])
        configure(&configuration)
        let relay = Relay(
            configuration: configuration, store: store, bus: bus,
            logger: Logger(label: "relay-core-tests", factory: { _ in SwiftLogNoOpLogHandler() }), clock: clock)
        self.relay = relay
        work = BackgroundTask { await relay.runBackgroundWork(sweepIntervalMillis: 3_600_000) }
    }

    /// `POST /pair/start` for a new session whose join token is valid for a minute.
    @discardableResult
    func startSession(_ session: TestSession = TestSession(), idleTimeoutSeconds: UInt64? = nil) async throws -> TestSession {
        var body: [String: JSONValue] = [
            "schemaVersion": 2,
            "sessionID": .string(session.sessionID),
            "joinToken": .string(session.joinToken),
            "desktopSessionToken": .string(session.desktopToken),
            "joinTokenExpiresAt": .string(Timestamp.format(millis: wallClockMillis() + 60_000)),
        ]
        if let idleTimeoutSeconds { body["idleTimeoutSeconds"] = .number(JSONNumber(idleTimeoutSeconds)) }
        _ = try await relay.pairStart(PairStartRequest(json: .object(body)), meta: fixtureMeta)
        return session
    }

    /// Authenticates `token` on a fresh recording socket, as a phone from `origin` would.
    func authenticate(token: String, origin: String? = fixtureOrigin) async -> (RecordingConnection, AuthOutcome) {
        let connection = RecordingConnection()
        let peer = SocketPeer(remoteIP: "203.0.113.9", origin: origin, userAgent: "relay-core-tests")
        return (connection, await relay.authenticate(token: token, peer: peer, connection: connection))
    }

    /// Authenticates the session's desktop; fails the test if it is refused.
    func connectDesktop(_ session: TestSession) async throws -> DesktopLink {
        let (connection, outcome) = await authenticate(token: session.desktopToken, origin: nil)
        guard case .authenticated(let endpoint) = outcome else {
            Issue.record("desktop auth refused: \(String(describing: rejection(outcome)))")
            throw FixtureError.refused
        }
        return DesktopLink(connection: connection, endpoint: endpoint)
    }

    /// Authenticates a phone with `token`; fails the test if it is refused.
    func connectMobile(token: String) async throws -> MobileLink {
        let (connection, outcome) = await authenticate(token: token)
        guard case .authenticated(let endpoint) = outcome else {
            Issue.record("mobile auth refused: \(String(describing: rejection(outcome)))")
            throw FixtureError.refused
        }
        let authOK = try #require(connection.frames(ofType: "auth_ok").first)
        let next = try #require(authOK["nextDeviceSessionToken"]?.stringValue)
        return MobileLink(connection: connection, endpoint: endpoint, nextToken: next)
    }

    /// `POST /pair/refresh`: a new join token for the same session, so another device can join.
    func refreshJoinToken(_ session: inout TestSession) async throws {
        session.joinToken = Identifiers.random(bytes: 32)
        _ = try await relay.pairRefresh(PairRefreshRequest(json: [
            "schemaVersion": 2, "sessionID": .string(session.sessionID), "joinToken": .string(session.joinToken),
            "desktopSessionToken": .string(session.desktopToken),
            "joinTokenExpiresAt": .string(Timestamp.format(millis: wallClockMillis() + 60_000)),
        ]), meta: fixtureMeta)
    }

    /// `POST /pair/stop` with the session's desktop credentials.
    func stop(_ session: TestSession) async throws {
        _ = try await relay.pairStop(DesktopCredentialsRequest(json: [
            "schemaVersion": 2, "sessionID": .string(session.sessionID), "desktopSessionToken": .string(session.desktopToken),
        ]), meta: fixtureMeta)
    }

    /// Runs `/pair/join` (on this node) while `desktop` answers the `relay.pair_request` it
    /// receives with an approval sent over its socket, and returns the trusted device.
    func pairDevice(_ session: TestSession, approvedBy desktop: DesktopLink) async throws -> PairedDevice {
        let request = try PairJoinRequest(json: [
            "sessionID": .string(session.sessionID), "joinToken": .string(session.joinToken), "deviceName": "Test Phone",
        ])
        let earlierRequests = desktop.connection.frames(ofType: "relay.pair_request").count
        async let joined = relay.pairJoin(request, meta: fixtureMeta)
        let pairRequest = try #require(
            await desktop.connection.waitForFrame(ofType: "relay.pair_request", count: earlierRequests + 1))
        let requestID = try #require(pairRequest["requestID"]?.stringValue)
        let decision: JSONValue = [
            "type": "relay.pair_decision", "sessionID": .string(session.sessionID),
            "requestID": .string(requestID), "approved": true,
        ]
        desktop.endpoint.receive(text: Array(decision.serialized.utf8))
        let body = try JSONValue.parse(try await joined)
        return PairedDevice(
            deviceID: try #require(body["deviceID"]?.stringValue),
            token: try #require(body["deviceSessionToken"]?.stringValue))
    }

    /// A session with its desktop connected and one device paired.
    func pairedSession(idleTimeoutSeconds: UInt64? = nil) async throws -> (TestSession, DesktopLink, PairedDevice) {
        let session = try await startSession(idleTimeoutSeconds: idleTimeoutSeconds)
        let desktop = try await connectDesktop(session)
        let device = try await pairDevice(session, approvedBy: desktop)
        return (session, desktop, device)
    }
}

enum FixtureError: Error {
    case refused
}

// MARK: - Several nodes in one process

/// Relay nodes and raw bus observers on one in-process hub, sharing one store (what a restarted
/// or second node restores from).
final class Cluster: Sendable {
    let hub = InProcessBusHub()
    let store = InMemoryStateStore(shared: true)
    private let buses = Mutex<[InProcessClusterBus]>([])

    /// A new endpoint on the hub, shut down with the cluster.
    func makeBus() -> InProcessClusterBus {
        let bus = hub.makeBus()
        buses.withLock { $0.append(bus) }
        return bus
    }

    /// A node on the hub; call `relay.start()` to restore from the store and receive envelopes.
    func node(_ configure: (inout CoreConfiguration) -> Void = { _ in }) -> RelayNode {
        RelayNode(store: store, bus: makeBus(), configure)
    }

    /// A node that has restored the store's sessions and receives from the bus.
    func startedNode(_ configure: (inout CoreConfiguration) -> Void = { _ in }) async throws -> RelayNode {
        let node = node(configure)
        try await node.relay.start()
        return node
    }

    /// A bare bus endpoint that records what it receives.
    func observer() async throws -> BusObserver {
        let observer = BusObserver(bus: makeBus())
        try await observer.bus.start(handler: { [observer] envelope in observer.record(envelope) }, connectivity: { _ in })
        return observer
    }

    func shutdown() async {
        for bus in buses.withLock({ $0 }) { await bus.shutdown() }
    }
}

/// Runs `body` with a fresh cluster and shuts its buses down afterwards, whatever happens.
func withCluster(_ body: (Cluster) async throws -> Void) async throws {
    let cluster = Cluster()
    do {
        try await body(cluster)
    } catch {
        await cluster.shutdown()
        throw error
    }
    await cluster.shutdown()
}

/// A bus endpoint's deliveries, in arrival order.
final class BusObserver: Sendable {
    let bus: InProcessClusterBus
    private let received = Mutex<[BusEnvelope]>([])

    init(bus: InProcessClusterBus) { self.bus = bus }

    func record(_ envelope: BusEnvelope) { received.withLock { $0.append(envelope) } }

    var envelopes: [BusEnvelope] { received.withLock { $0 } }

    /// Waits until `count` matching envelopes have arrived; returns them, or nil on timeout.
    func waitForEnvelopes(
        count: Int, timeout: Duration = .seconds(30), where matches: @escaping (BusEnvelope) -> Bool = { _ in true }
    ) async -> [BusEnvelope]? {
        await eventually(timeout: timeout) {
            let matching = self.envelopes.filter(matches)
            return matching.count >= count ? matching : nil
        }
    }
}

/// An envelope from `bus` with a small JSON payload carrying `n`.
func envelope(from bus: InProcessClusterBus, sessionID: String, target: BusTarget, n: Int) -> BusEnvelope {
    BusEnvelope(
        sessionID: sessionID, sourceInstanceID: bus.instanceID, target: target,
        payload: Array(#"{"n":\#(n)}"#.utf8), issuedAtMillis: wallClockMillis(), nonce: Identifiers.shortID())
}

/// The `n` of an envelope built by ``envelope(from:sessionID:target:n:)``.
func sequenceNumber(_ payload: [UInt8]) -> Int? {
    (try? JSONValue.parse(payload))?.frameNumber
}

extension JSONValue {
    /// The integer member `n` that numbered test frames and envelopes carry.
    var frameNumber: Int? { self["n"]?.numberValue?.int64.map(Int.init) }
}

@testable import RelayClient
import Testing

/// The decisions behind a client's reconnects, gaps and trust settings, value by value.
@Suite("Connection policy")
struct ConnectionPolicyTests {
    /// A deterministic generator (SplitMix64), so the jitter is reproducible.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func backoffDoublesWithJitterUpToTheCap() {
        let policy = RelayReconnectPolicy(initialDelay: .milliseconds(500), maximumDelay: .seconds(30))
        var generator = SeededGenerator(state: 42)
        for failures in 1...12 {
            let ceiling = min(0.5 * Double(1 << (failures - 1)), 30)
            for _ in 0..<50 {
                let delay = policy.delay(afterFailures: failures, using: &generator)
                let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
                #expect(seconds >= ceiling / 2 - 1e-6 && seconds <= ceiling + 1e-6, "failure \(failures): \(seconds) s")
            }
        }
        // Jitter spreads phones dropped together.
        let spread = Set((0..<20).map { _ in policy.delay(afterFailures: 3, using: &generator) })
        #expect(spread.count > 10)
    }

    @Test(arguments: ["device_revoked", "stopped_by_desktop", "session_expired", "replaced_by_new_pair_start", "idle_timeout",
                      "device_reconnected", "desktop_reconnected"])
    func reasonsThatEndTheSessionAreNotRetried(reason: String) {
        #expect(RelayDisconnection(reason: reason).endsSession)
        #expect(!RelayDisconnection(reason: reason).nodeIsDraining)
    }

    @Test(arguments: ["slow_consumer", "heartbeat_timeout", "socket_rate_limited", "relay_over_capacity", "server_shutdown", "something_new"])
    func otherEndsAreRetried(reason: String) {
        #expect(!RelayDisconnection(reason: reason).endsSession)
    }

    @Test func aDrainingNodeIsLeftAtOnce() {
        #expect(RelayDisconnection(reason: "server_shutdown", closeCode: 1012).nodeIsDraining)
        #expect(RelayDisconnection(closeCode: 1012).nodeIsDraining)
        #expect(!RelayDisconnection(closeCode: 1006, error: "reset").nodeIsDraining)
    }

    @Test func theSequenceFindsGapsAndTakesSnapshotsAndRestartsAsBaselines() {
        var sequence = DesktopSequence()
        #expect(sequence.observe(seq: 7, isSnapshot: false) == .inOrder)
        #expect(sequence.observe(seq: 8, isSnapshot: false) == .inOrder)
        #expect(sequence.observe(seq: 11, isSnapshot: false) == .gap(expected: 9, received: 11))
        sequence.awaitingSnapshot = true
        #expect(sequence.observe(seq: 20, isSnapshot: true) == .inOrder)
        #expect(!sequence.awaitingSnapshot)
        #expect(sequence.observe(seq: 21, isSnapshot: false) == .inOrder)
        #expect(sequence.observe(seq: 1, isSnapshot: false) == .restarted)
        #expect(sequence.observe(seq: 2, isSnapshot: false) == .inOrder)
    }

    @Test func pinsAndCAsAreCheckedWhenMade() throws {
        let pin = try RelayTLS.pinnedCertificate(sha256: String(repeating: "AB:", count: 31) + "AB")
        #expect(pin.trust == .pinnedCertificate(sha256: Array(repeating: 0xAB, count: 32)))
        #expect(throws: RelayClientError.self) { try RelayTLS.pinnedCertificate(sha256: "abcd") }
        #expect(throws: RelayClientError.self) { try RelayTLS.pinnedCertificate(sha256: String(repeating: "zz", count: 32)) }
        #expect(throws: RelayClientError.self) { try RelayTLS.certificateAuthorities(pem: "no certificate here") }
        #expect(throws: RelayClientError.self) { try RelayTLS.certificateAuthorities(pemFile: "/nonexistent/ca.pem") }
        let pem = "-----BEGIN CERTIFICATE-----\nAQID\nBAU=\n-----END CERTIFICATE-----\n"
        #expect(try RelayTLS.certificateAuthorities(pem: pem).trust == .certificateAuthorities([[1, 2, 3, 4, 5]]))
        #expect("\(pin)" == "RelayTLS(pinned certificate)")
    }

    @Test func commandsSurviveTheWireBothWays() {
        let commands: [RelayCommand] = [
            .sendMessage(threadID: "t-1", text: "hi"), .selectThread(threadID: "t-2"), .selectProject(projectID: "p-1"),
            .respondToRuntimeRequest(
                id: "42", kind: .approval, response: RelayRuntimeResponse(decision: .acceptForSession, permissions: ["net"], approved: true)),
        ]
        for command in commands {
            #expect(RelayCommand(name: command.name, fields: command.fields) == command)
        }
        #expect(RelayCommand(name: "approval.respond", fields: [:]) == nil)
    }

    @Test func theDefaultOriginAndSocketFollowTheRelayURL() {
        #expect(RelayEndpoint.origin(of: "https://relay.example/base") == "https://relay.example")
        #expect(RelayEndpoint.origin(of: "http://127.0.0.1:8787") == "http://127.0.0.1:8787")
        #expect(RelayEndpoint.defaultWebSocketURL(baseURL: "https://relay.example:8443") == "wss://relay.example:8443/ws")
        #expect(RelayEndpoint.defaultWebSocketURL(baseURL: "http://[::1]:80") == "ws://[::1]/ws")
        #expect(RelayEndpoint.origin(of: "ftp://relay.example") == nil)
    }
}

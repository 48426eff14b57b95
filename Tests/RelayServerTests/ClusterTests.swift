import Foundation
import RelayTestClient
import RelayLocalCluster
import RelayTestSupport
import Testing

/// Issue 3: relay processes on separate loopback ports behave as one relay over a real Redis and
/// a real NATS (PROTOCOL §6, DECISIONS 3–6). Serialized: each test runs two or three relays.
@Suite("Cluster", .serialized, .timeLimit(.minutes(3)))
struct ClusterTests {
    @Test func pairingAndTrafficBothWaysAcrossThreeNodesInOrder() async throws {
        try await withRelayCluster(count: 3) { cluster in
            // Desktop on node 0, join through node 1, phone socket on node 2.
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(1))
            let paired = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(2))
            #expect(paired.phoneAuthOK["desktopConnected"]?.boolValue == true)
            #expect(paired.pairResult?["approved"]?.boolValue == true)

            for _ in 1...20 { try await phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"]) }
            var seqs: [Int] = []
            while seqs.count < 20 {
                let frame = try await desktop.socket.nextFrame()
                if frame["payload"]?["type"]?.stringValue == "command", let seq = frame["seq"]?.intValue { seqs.append(seq) }
            }
            #expect(seqs == Array(1...20))

            var sent: [String] = []
            for seq in 1...20 { sent.append(try await desktop.sendEvent(seq: UInt64(seq), payload: ["n": .int(seq)])) }
            var received: [String] = []
            while received.count < 20 {
                let text = try await phone.socket.nextText(timeout: .seconds(5))
                if text.contains(#""type":"event""#) { received.append(text) }
            }
            #expect(received == sent, "desktop events reach the phone on another node byte for byte and in order")
        }
    }

    @Test func oneJoinTokenRedeemedConcurrentlyOnTwoNodesSucceedsExactlyOnce() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            #expect(try await desktop.startPairing().status == 200)
            _ = try await desktop.connect(url: cluster.socketURL(0))
            let phones = [RelayPhone(baseURL: cluster.baseURL(1)), RelayPhone(baseURL: cluster.baseURL(2))]
            let sessionID = desktop.sessionID, joinToken = desktop.joinToken
            // The desktop approves every request it is shown until both joins have answered: one
            // join may be refused before its node asks, once the other has redeemed the token.
            let approver = Task {
                while true {
                    let request = try await desktop.nextPairRequest(timeout: .seconds(30))
                    try await desktop.decide(requestID: request.requestID, approved: true)
                }
            }
            async let first = phones[0].join(sessionID: sessionID, joinToken: joinToken, timeout: .seconds(20))
            async let second = phones[1].join(sessionID: sessionID, joinToken: joinToken, timeout: .seconds(20))
            let responses = try await [first, second]
            approver.cancel()
            #expect(responses.map(\.status).sorted() == [200, 409])
            #expect(responses.first { $0.status == 409 }?.errorCode == "join_token_already_used")
            let list = try await RelayDesktop(
                baseURL: cluster.baseURL(2), sessionID: sessionID, desktopSessionToken: desktop.desktopSessionToken
            ).listDevices()
            #expect(try list.json()["devices"]?.arrayValue?.count == 1)
        }
    }

    @Test func revokeOnOneNodeClosesThePhoneOnAnotherWithinASecondAndItsTokenFailsEverywhere() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(1))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(2))
            let tokens = [phone.deviceSessionToken, phone.previousToken].compactMap { $0 }
            let socket = try phone.socket

            let started = ContinuousClock.now
            #expect(try await desktop.revokeDevice(try #require(phone.deviceID)).status == 200)
            let (texts, code) = try await socket.readUntilClosed(.seconds(2))
            let elapsed = ContinuousClock.now - started
            #expect(texts.last == #"{"reason":"device_revoked","type":"disconnect"}"#)
            #expect(code == 1008)
            #expect(elapsed < .seconds(1), "revocation took \(elapsed)")

            for node in 0..<3 {
                for token in tokens {
                    await #expect(throws: RelayClientError.self, "node \(node) accepted a revoked token") {
                        try await phone.connect(url: cluster.socketURL(node), token: token, authTimeout: .seconds(5))
                    }
                }
            }
        }
    }

    @Test func afterKillNineOfTheDesktopsNodeEveryoneReconnectsElsewhereAndCarriesOn() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(0))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))

            let started = ContinuousClock.now
            try await cluster.kill(0)
            #expect(try await desktop.connect(url: cluster.socketURL(2))["type"]?.stringValue == "auth_ok")
            let status = try await phone.socket.nextFrame(ofType: "relay.desktop_status")
            #expect(status["desktopConnected"]?.boolValue == true)
            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "after-kill"])
            let command = try await desktop.socket.nextFrame(ofType: "command", inPayload: true)
            #expect(command["payload"]?["payload"]?["threadID"]?.stringValue == "after-kill")
            let recovered = ContinuousClock.now - started

            // The phone moves too, with its rotated token, and events still flow.
            #expect(try await phone.reconnect(url: cluster.socketURL(2))["desktopConnected"]?.boolValue == true)
            let event = try await desktop.sendEvent(seq: 1)
            #expect(try await phone.socket.nextText(ofType: "event") == event)
            print("cluster: desktop node killed, traffic resumed through another node after \(recovered)")
        }
    }

    @Test func rollingRestartOfEveryNodeUnderTrafficLosesNoSession() async throws {
        try await withRelayCluster(count: 3) { cluster in
            // Three sessions, each with its desktop and phone on different nodes.
            var sessions: [(desktop: RelayDesktop, phone: RelayPhone)] = []
            for index in 0..<3 {
                let desktop = RelayDesktop(baseURL: cluster.baseURL(index))
                let phone = RelayPhone(baseURL: cluster.baseURL(index))
                _ = try await RelayPairing.pairConnected(
                    desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(index),
                    phoneSocketURL: cluster.socketURL((index + 1) % 3))
                sessions.append((desktop, phone))
            }
            var placement = (0..<3).map { (desktop: $0, phone: ($0 + 1) % 3) }
            var round = 0
            for restarting in 0..<3 {
                let target = (restarting + 1) % 3
                let draining = Task { try await cluster.stop(restarting) }
                // Clients on the draining node are told server_shutdown and move to the next node.
                for (index, session) in sessions.enumerated() {
                    if placement[index].desktop == restarting {
                        let (texts, code) = try await session.desktop.socket.readUntilClosed(.seconds(5))
                        #expect(texts.last == #"{"reason":"server_shutdown","type":"disconnect"}"#)
                        #expect(code == 1012)
                        _ = try await session.desktop.connect(url: cluster.socketURL(target))
                        placement[index].desktop = target
                    }
                    if placement[index].phone == restarting {
                        let (texts, _) = try await session.phone.socket.readUntilClosed(.seconds(5))
                        #expect(texts.last == #"{"reason":"server_shutdown","type":"disconnect"}"#)
                        _ = try await session.phone.reconnect(url: cluster.socketURL(target))
                        placement[index].phone = target
                    }
                }
                #expect(try await draining.value == 0)
                try await cluster.restart(restarting)
                round += 1
                // Traffic both ways on every session after each restart.
                for session in sessions {
                    try await session.phone.sendCommand(name: "thread.select", fields: ["threadID": .string("round-\(round)")])
                    let command = try await session.desktop.socket.nextFrame(ofType: "command", inPayload: true)
                    #expect(command["payload"]?["payload"]?["threadID"]?.stringValue == "round-\(round)")
                    let event = try await session.desktop.sendEvent(seq: UInt64(round))
                    #expect(try await session.phone.socket.nextText(ofType: "event") == event)
                }
            }
        }
    }

    @Test func redisRestartedWithPersistenceLosesNoPairedSessionAndHeldSocketsKeepRouting() async throws {
        let redis = try LocalDependencyServer(.redis(appendOnly: true), executable: try TestServices.redisServer())
        try await redis.start()
        try await withRelayCluster(count: 2, redisURL: redis.url) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(0))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))

            try await redis.stop()
            // DECISIONS 6: not ready, new pairings refused with 503, held sockets keep routing.
            try await eventuallyStatus(cluster.baseURL(0) + "/readyz", 503)
            let refused = try await RelayDesktop(baseURL: cluster.baseURL(1)).startPairing()
            #expect(refused.status == 503)
            #expect(refused.errorCode == "state_store_unavailable")
            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "during-outage"])
            let command = try await desktop.socket.nextFrame(ofType: "command", inPayload: true)
            #expect(command["payload"]?["payload"]?["threadID"]?.stringValue == "during-outage")

            let restarted = ContinuousClock.now
            try await redis.start()
            try await cluster.waitUntilReady(0)
            try await cluster.waitUntilReady(1)
            let recovered = ContinuousClock.now - restarted
            // The paired session survived: the phone authenticates on the other node with its token.
            #expect(try await phone.reconnect(url: cluster.socketURL(0))["desktopConnected"]?.boolValue == true)
            #expect(try await RelayDesktop(baseURL: cluster.baseURL(1)).startPairing().status == 200)
            print("cluster: Redis restarted, both nodes ready again after \(recovered)")
        }
    }

    @Test func natsRestartedTrafficResumesAndPhonesGetTheResyncSignal() async throws {
        let nats = try LocalDependencyServer(.nats, executable: try TestServices.natsServer())
        try await nats.start()
        try await withRelayCluster(count: 2, natsURL: nats.url) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(0))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))

            try await nats.stop(graceful: false)
            // The phone's node lost the desktop's node: commands would be lost, so it says offline.
            let offline = try await phone.socket.nextFrame(ofType: "relay.desktop_status")
            #expect(offline["desktopConnected"]?.boolValue == false)
            try await eventuallyStatus(cluster.baseURL(1) + "/readyz", 503)

            let restarted = ContinuousClock.now
            try await nats.start()
            // Back: the resync signal, then traffic both ways.
            let online = try await phone.socket.nextFrame(ofType: "relay.desktop_status", timeout: .seconds(15))
            #expect(online["desktopConnected"]?.boolValue == true)
            let recovered = ContinuousClock.now - restarted
            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "after-nats"])
            let command = try await desktop.socket.nextFrame(ofType: "command", inPayload: true)
            #expect(command["payload"]?["payload"]?["threadID"]?.stringValue == "after-nats")
            let event = try await desktop.sendEvent(seq: 1)
            #expect(try await phone.socket.nextText(ofType: "event") == event)
            try await cluster.waitUntilReady(0)
            try await cluster.waitUntilReady(1)
            print("cluster: NATS restarted, phone resynced after \(recovered)")
        }
    }
}

/// Polls `url` until it answers `status`.
func eventuallyStatus(_ url: String, _ status: Int, timeout: Duration = .seconds(10)) async throws {
    let parts = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
    let base = parts.prefix(3).joined(separator: "/")
    let path = "/" + (parts.count > 3 ? String(parts[3]) : "")
    let http = RelayHTTPClient(baseURL: base)
    let deadline = ContinuousClock.now + timeout
    var last: Int?
    while ContinuousClock.now < deadline {
        last = (try? await http.get(path, timeout: .seconds(1)))?.status
        if last == status { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestFailure("\(url) answered \(last.map(String.init) ?? "nothing"), not \(status), within \(timeout)")
}

extension RelayWebSocket {
    /// The next text frame whose `type` (or, with `inPayload`, whose `payload.type`) is `type`,
    /// skipping everything else.
    func nextFrame(ofType type: String, inPayload: Bool = false, timeout: Duration = .seconds(30)) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        while true {
            let frame = try await nextJSON(timeout: deadline - ContinuousClock.now)
            let found = inPayload ? frame["payload"]?["type"]?.stringValue : frame.type
            if found == type { return frame }
        }
    }

    /// The next text frame whose `payload.type` is `type`, as the exact text received.
    func nextText(ofType type: String, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let text = try await nextText(timeout: deadline - ContinuousClock.now)
            if (try? JSONValue.parse(text))?["payload"]?["type"]?.stringValue == type { return text }
        }
    }
}

extension RelayPhone {
    /// Closes the current socket and authenticates on `url` with the rotated token.
    @discardableResult
    func reconnect(url: String) async throws -> JSONValue {
        await disconnect()
        return try await connect(url: url)
    }
}

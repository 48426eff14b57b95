import Foundation
import Logging
import RelayTestClient
import RelayLocalCluster
import RelayRedis
import RelayTestSupport
import Testing

/// Issue: cluster truth. Every answer the contract gives about a session is the cluster's, not one
/// node's: the `/pair/start` conflict rule, the desktop's presence (with a lease that lapses when
/// its node dies), the device counts; and Redis holds no token. Relay processes on loopback ports
/// over a real Redis and NATS.
@Suite("Cluster truth", .serialized, .timeLimit(.minutes(3)))
struct ClusterTruthTests {
    /// The next frame on `socket` that `matches`, skipping the others.
    static func frame(
        on socket: RelayWebSocket, timeout: Duration = .seconds(30), where matches: (JSONValue) -> Bool
    ) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        while true {
            let frame = try await socket.nextJSON(timeout: max(deadline - ContinuousClock.now, .milliseconds(1)))
            if matches(frame) { return frame }
        }
    }

    static func isDesktopStatus(_ connected: Bool) -> (JSONValue) -> Bool {
        { $0["type"]?.stringValue == "relay.desktop_status" && $0["desktopConnected"]?.boolValue == connected }
    }

    static func isDeviceCount(_ count: Int) -> (JSONValue) -> Bool {
        { $0["type"]?.stringValue == "relay.device_count" && $0["connectedDeviceCount"]?.intValue == count }
    }

    /// A desktop on node 0 and two paired phones, on nodes 1 and 2; the second phone's `auth_ok`.
    static func desktopWithPhonesOnTheOtherNodes(
        _ cluster: LocalCluster
    ) async throws -> (desktop: RelayDesktop, first: RelayPhone, second: RelayPhone, secondAuthOK: JSONValue) {
        let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
        let first = RelayPhone(baseURL: cluster.baseURL(0))
        let second = RelayPhone(baseURL: cluster.baseURL(0))
        _ = try await RelayPairing.pairConnected(
            desktop: desktop, phone: first, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))
        let secondAuthOK = try await RelayPairing.addPhone(to: desktop, phone: second, phoneSocketURL: cluster.socketURL(2))
        return (desktop, first, second, secondAuthOK)
    }

    /// A raw connection to the cluster's Redis.
    static func redis(_ cluster: LocalCluster) async throws -> RedisConnection {
        let connection = RedisConnection(url: try RedisURL(parsing: cluster.redisURL), logger: Logger(label: "cluster-truth-test"))
        guard await connection.waitUntilAvailable(timeout: .seconds(10)) else { throw TestFailure("Redis at \(cluster.redisURL) does not answer") }
        return connection
    }

    /// `connected` of every device in `/devices/list` asked through `node`.
    static func connectedDevices(_ desktop: RelayDesktop, through node: String) async throws -> [String: Bool] {
        let asked = RelayDesktop(
            baseURL: node, sessionID: desktop.sessionID, desktopSessionToken: desktop.desktopSessionToken)
        let response = try await asked.listDevices()
        guard response.status == 200, let devices = try response.json()["devices"]?.arrayValue else {
            throw TestFailure("/devices/list answered \(response.status): \(response.bodyText)")
        }
        var connected: [String: Bool] = [:]
        for device in devices {
            if let id = device["deviceID"]?.stringValue { connected[id] = device["connected"]?.boolValue }
        }
        return connected
    }

    // MARK: The conflict rule

    @Test func anotherDesktopCannotTakeOverASessionWhoseDesktopIsConnectedOnAnyNode() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            #expect(try await desktop.startPairing().status == 200)
            _ = try await desktop.connect(url: cluster.socketURL(0))
            // Someone who read the session id from the QR code tries every node.
            for node in 0..<3 {
                let intruder = RelayDesktop(baseURL: cluster.baseURL(node), sessionID: desktop.sessionID)
                let response = try await intruder.startPairing()
                #expect(response.status == 409, "node \(node): \(response.bodyText)")
                #expect(response.errorCode == "session_already_active", "node \(node)")
            }
            // The pairing is intact: the phone holding the QR code joins through another node.
            let phone = RelayPhone(baseURL: cluster.baseURL(1))
            let approver = Task {
                let request = try await desktop.nextPairRequest(timeout: .seconds(30))
                try await desktop.decide(requestID: request.requestID, approved: true)
            }
            let join = try await phone.join(sessionID: desktop.sessionID, joinToken: desktop.joinToken, timeout: .seconds(30))
            try await approver.value
            #expect(join.status == 200, "\(join.bodyText)")
            // The same desktop may still restart its own session, from any node.
            let same = RelayDesktop(
                baseURL: cluster.baseURL(2), sessionID: desktop.sessionID, desktopSessionToken: desktop.desktopSessionToken)
            #expect(try await same.startPairing().status == 200)
            await desktop.disconnect()
        }
    }

    @Test func aPendingJoinOnAnyNodeKeepsTheSessionFromAnotherDesktop() async throws {
        try await withRelayCluster(count: 3, environment: ["PAIR_APPROVAL_TIMEOUT_MS": "5000"]) { cluster in
            let redis = try await Self.redis(cluster)
            defer { Task { await redis.shutdown() } }
            // The desktop started the pairing and has no socket: the phone's join waits on node 1.
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            #expect(try await desktop.startPairing().status == 200)
            let phone = RelayPhone(baseURL: cluster.baseURL(1))
            let join = Task { try await phone.join(sessionID: desktop.sessionID, joinToken: desktop.joinToken, timeout: .seconds(60)) }
            let presenceKey = "\(cluster.keyPrefix):presence:v1:\(desktop.sessionID)"
            let waiting = await eventually(timeout: .seconds(30)) {
                (try? await redis.send("HEXISTS", presenceKey, "join")) == .integer(1)
            }
            #expect(waiting, "the join's presence claim never appeared")

            let intruder = RelayDesktop(baseURL: cluster.baseURL(2), sessionID: desktop.sessionID)
            let refused = try await intruder.startPairing()
            #expect(refused.status == 409, "\(refused.bodyText)")
            #expect(refused.errorCode == "session_already_active")

            // No desktop decides: the wait ends, its claim goes, and the unused session may be
            // replaced again (the contract's rule for a session without participants).
            let ended = try await join.value
            #expect(ended.status == 408, "\(ended.bodyText)")
            let released = await eventually(timeout: .seconds(30)) {
                (try? await redis.send("HEXISTS", presenceKey, "join")) == .integer(0)
            }
            #expect(released)
            #expect(try await intruder.startPairing().status == 200)
        }
    }

    // MARK: Presence with a lease

    @Test func aKilledDesktopNodeIsOfflineOnEveryOtherNodeWithinThePresenceTTL() async throws {
        let ttl = 2000
        try await withRelayCluster(count: 3, environment: ["PRESENCE_TTL_MS": "\(ttl)"]) { cluster in
            let (desktop, first, second, secondOK) = try await Self.desktopWithPhonesOnTheOtherNodes(cluster)
            #expect(secondOK["desktopConnected"]?.boolValue == true)

            try await cluster.kill(0)
            let killed = ContinuousClock.now
            // No node said goodbye for it: the lease lapsing is what tells the others.
            for phone in [first, second] {
                _ = try await Self.frame(on: phone.socket, timeout: .seconds(30), where: Self.isDesktopStatus(false))
                let elapsed = ContinuousClock.now - killed
                #expect(elapsed <= .milliseconds(ttl + 1000), "desktop_status false after \(elapsed)")
            }
            // Commands now fail fast instead of vanishing.
            for phone in [first, second] {
                _ = try await phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"])
                let error = try await Self.frame(on: phone.socket) { $0["type"]?.stringValue == "relay.error" }
                #expect(error["error"]?.stringValue == "desktop_offline")
            }
            // The desktop's reconnect on another node restores it for both phones.
            let again = try await desktop.connect(url: cluster.socketURL(1))
            #expect(again["connectedDeviceCount"]?.intValue == 2)
            for phone in [first, second] {
                _ = try await Self.frame(on: phone.socket, where: Self.isDesktopStatus(true))
            }
            _ = try await first.sendCommand(name: "thread.select", fields: ["threadID": "t2"])
            let command = try await Self.frame(on: desktop.socket) { $0["payload"]?["type"]?.stringValue == "command" }
            #expect(command["payload"]?["payload"]?["threadID"]?.stringValue == "t2")
        }
    }

    @Test func aKilledPhoneNodeLeavesTheDesktopWithTheCountOfThePhonesLeft() async throws {
        let ttl = 2000
        try await withRelayCluster(count: 3, environment: ["PRESENCE_TTL_MS": "\(ttl)"]) { cluster in
            let (desktop, first, second, _) = try await Self.desktopWithPhonesOnTheOtherNodes(cluster)
            _ = try await Self.frame(on: desktop.socket, where: Self.isDeviceCount(2))

            // The second phone's node dies without a word: its lease lapsing is what tells.
            try await cluster.kill(2)
            let killed = ContinuousClock.now
            _ = try await Self.frame(on: desktop.socket, where: Self.isDeviceCount(1))
            let elapsed = ContinuousClock.now - killed
            #expect(elapsed <= .milliseconds(ttl + 1000), "relay.device_count 1 after \(elapsed)")
            let secondID = try #require(second.deviceID), firstID = try #require(first.deviceID)
            #expect(try await Self.connectedDevices(desktop, through: cluster.baseURL(1)) == [firstID: true, secondID: false])
        }
    }

    @Test func aNodeFrozenPastItsLeaseClaimsItsDesktopAgainWhenItResumes() async throws {
        try await withRelayCluster(count: 2, environment: ["PRESENCE_TTL_MS": "1000"]) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(0))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))
            // A stop-the-world pause (a VM freeze, a stalled host) longer than the lease.
            cluster.node(0).process.send(SIGSTOP)
            _ = try await Self.frame(on: phone.socket, where: Self.isDesktopStatus(false))
            cluster.node(0).process.send(SIGCONT)
            // The node finds its lease lapsed, claims its desktop again and says so.
            _ = try await Self.frame(on: phone.socket, where: Self.isDesktopStatus(true))
            _ = try await phone.sendCommand(name: "thread.select", fields: ["threadID": "after-pause"])
            let command = try await Self.frame(on: desktop.socket) { $0["payload"]?["type"]?.stringValue == "command" }
            #expect(command["payload"]?["payload"]?["threadID"]?.stringValue == "after-pause")
            let metrics = try await cluster.prometheus(0)
            #expect(metrics.contains("relay_presence_lease_lapses_total 1"), "\(metrics.split(separator: "\n").filter { $0.contains("lease") })")
        }
    }

    // MARK: Counts

    @Test func countsAndConnectedAreTheClustersOnEveryNode() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let first = RelayPhone(baseURL: cluster.baseURL(1))
            let second = RelayPhone(baseURL: cluster.baseURL(2))
            let paired = try await RelayPairing.pairConnected(
                desktop: desktop, phone: first, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))
            #expect(paired.phoneAuthOK["connectedDeviceCount"]?.intValue == 1)
            let secondOK = try await RelayPairing.addPhone(to: desktop, phone: second, phoneSocketURL: cluster.socketURL(2))
            // Counted on node 2 with the phone on node 1: the cluster's two devices.
            #expect(secondOK["connectedDeviceCount"]?.intValue == 2)
            _ = try await Self.frame(on: desktop.socket, where: Self.isDeviceCount(2))

            let firstID = try #require(first.deviceID), secondID = try #require(second.deviceID)
            for node in 0..<3 {
                #expect(try await Self.connectedDevices(desktop, through: cluster.baseURL(node)) == [firstID: true, secondID: true], "node \(node)")
            }

            await first.disconnect()
            _ = try await Self.frame(on: desktop.socket, where: Self.isDeviceCount(1))
            for node in 0..<3 {
                let listed = await eventually(timeout: .seconds(30)) {
                    (try? await Self.connectedDevices(desktop, through: cluster.baseURL(node))) == [firstID: false, secondID: true]
                }
                #expect(listed, "node \(node)")
            }

            // A desktop reconnecting on the third node counts the phone connected on it.
            await desktop.disconnect()
            let again = try await desktop.connect(url: cluster.socketURL(2))
            #expect(again["connectedDeviceCount"]?.intValue == 1)
            // And a phone on the desktop's first node counts both again.
            let firstAgain = try await first.connect(url: cluster.socketURL(0))
            #expect(firstAgain["connectedDeviceCount"]?.intValue == 2)
            _ = try await Self.frame(on: desktop.socket, where: Self.isDeviceCount(2))
        }
    }

    // MARK: Tokens at rest

    @Test func redisHoldsNoTokenInDigestMode() async throws {
        try await withRelayCluster(count: 2) { cluster in
            let redis = try await Self.redis(cluster)
            defer { Task { await redis.shutdown() } }
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(1))
            var tokens = [desktop.desktopSessionToken, desktop.joinToken]
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))
            tokens += [phone.previousToken, phone.deviceSessionToken].compactMap { $0 }
            // A rotation on the other node, and a new join token.
            await phone.disconnect()
            _ = try await phone.connect(url: cluster.socketURL(0))
            tokens += [phone.deviceSessionToken].compactMap { $0 }
            #expect(try await desktop.refreshJoinToken().status == 200)
            tokens.append(desktop.joinToken)
            #expect(Set(tokens).count == 6)

            let keys = try await redis.send("KEYS", "\(cluster.keyPrefix):*").array?.compactMap(\.text) ?? []
            #expect(keys.contains("\(cluster.keyPrefix):session:v1:\(desktop.sessionID)"))
            var stored: [String] = []
            for key in keys {
                stored.append(key)
                switch try await redis.send("TYPE", key) {
                case .status("string"): stored.append(try await redis.send("GET", key).text ?? "")
                case .status("set"): stored += try await redis.send("SMEMBERS", key).array?.compactMap(\.text) ?? []
                case .status("hash"): stored += try await redis.send("HGETALL", key).array?.compactMap(\.text) ?? []
                case let other: Issue.record("unexpected key type \(other) of \(key)")
                }
            }
            for token in tokens {
                #expect(!stored.contains { $0.contains(token) }, "a token is readable in Redis")
            }
            let record = try await redis.send("GET", "\(cluster.keyPrefix):session:v1:\(desktop.sessionID)").text ?? ""
            #expect(record.hasPrefix(#"{"schema_version":2,"#))
        }
    }

    @Test func aPlainRecordFromAReferenceModeNodeAuthenticatesOnADigestNode() async throws {
        try await withRelayCluster(count: 2, environment: ["REDIS_TOKEN_STORAGE": "plain"]) { cluster in
            let redis = try await Self.redis(cluster)
            defer { Task { await redis.shutdown() } }
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(0))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(0))
            let recordKey = "\(cluster.keyPrefix):session:v1:\(desktop.sessionID)"
            let plain = try await redis.send("GET", recordKey).text ?? ""
            #expect(plain.hasPrefix(#"{"schema_version":1,"#))
            #expect(plain.contains(desktop.desktopSessionToken), "the reference layout keeps tokens in clear")

            // Node 1 moves to digest mode: the phone's and the desktop's tokens still work there.
            try await cluster.restart(1, overrides: ["REDIS_TOKEN_STORAGE": "digest"])
            await phone.disconnect()
            let phoneOK = try await phone.connect(url: cluster.socketURL(1))
            #expect(phoneOK["type"]?.stringValue == "auth_ok")
            await desktop.disconnect()
            let desktopOK = try await desktop.connect(url: cluster.socketURL(1))
            #expect(desktopOK["type"]?.stringValue == "auth_ok")
            // Its write (the rotation) stored digests.
            let rewritten = try await redis.send("GET", recordKey).text ?? ""
            #expect(rewritten.hasPrefix(#"{"schema_version":2,"#))
            #expect(!rewritten.contains(desktop.desktopSessionToken))
            #expect(!rewritten.contains(try #require(phone.deviceSessionToken)))
        }
    }
}

import Foundation
import RelayLocalCluster
import RelayProtocol
import RelayTestClient
import RelayTestSupport
import Testing

/// Extension 10 (DECISIONS): a phone gets exactly the access its desktop grants, on every node.
@Suite("Device scopes", .serialized, .timeLimit(.minutes(3)))
struct DeviceScopeTests {
    static let viewOnly = "This device can view the session but not control it."

    /// Reads the desktop socket until `idle` passes with nothing, returning the text frames seen.
    static func quietFrames(_ socket: RelayWebSocket, idle: Duration = .milliseconds(300)) async throws -> [JSONValue] {
        try await socket.drain(idle: idle).compactMap { $0.text.flatMap { try? JSONValue.parse($0) } }
    }

    /// The next frame of `type` on `socket`, skipping device counts and desktop statuses.
    static func next(_ type: String, on socket: RelayWebSocket, timeout: Duration = .seconds(10)) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        while true {
            let frame = try await socket.nextJSON(timeout: max(deadline - ContinuousClock.now, .milliseconds(1)))
            if frame.type == type { return frame }
        }
    }

    // MARK: Single node

    @Test func aViewPhoneIsRefusedEveryCommandWithNothingForwardedAndConsumedButMayAskForSnapshots() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            let phone = RelayPhone(baseURL: relay.baseURL)
            let paired = try await RelayPairing.pairConnected(desktop: desktop, phone: phone, decisionFields: ["scope": "view"])
            // auth_ok: the contract's keys, then the grant.
            #expect(paired.phoneAuthOK["scope"]?.stringValue == "view")
            #expect(paired.phoneAuthOK["allowedCommands"] == nil && paired.phoneAuthOK["grantExpiresAt"] == nil)

            for name in ["thread.send_message", "thread.select"] {
                try await phone.sendCommand(name: name, fields: name == "thread.select" ? ["threadID": "t1"] : ["threadID": "t1", "text": "hi"])
                let error = try await Self.next("relay.error", on: phone.socket)
                #expect(error["error"]?.stringValue == "scope_denied")
                #expect(error["message"]?.stringValue == Self.viewOnly)
            }
            try await phone.requestSnapshot(reason: "view")
            let forwarded = try await Self.quietFrames(desktop.socket)
            #expect(forwarded.contains { $0.type == "relay.snapshot_request" }, "a view phone's snapshot request reaches the desktop")
            #expect(!forwarded.contains { $0["payload"]?["type"]?.stringValue == "command" }, "no command of a view phone is forwarded")

            let list = try await desktop.listDevices()
            let entry = try #require((try list.json())["devices"]?[0])
            #expect(entry["scope"]?.stringValue == "view")

            // Denied commands consumed no seq: once the desktop grants control, seq 1 goes through.
            let deviceID = try #require(phone.deviceID)
            let change = try await desktop.setScope(deviceID, fields: ["scope": "control"])
            #expect(change.status == 200)
            #expect((try change.json())["scope"]?.stringValue == "control")
            let scope = try await Self.next("relay.scope", on: phone.socket)
            #expect(scope.serialized == JSONValue.object(["type": "relay.scope", "sessionID": .string(desktop.sessionID), "scope": "control"]).serialized)
            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"], seq: 1)
            let commands = try await Self.quietFrames(desktop.socket).filter { $0["payload"]?["type"]?.stringValue == "command" }
            #expect(commands.map { $0["seq"]?.intValue } == [1])
        }
    }

    @Test func allowedCommandsAreEnforcedPerName() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            let phone = RelayPhone(baseURL: relay.baseURL)
            let paired = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone,
                decisionFields: ["scope": "control", "allowedCommands": ["thread.select", "runtime_request.respond"]])
            #expect(paired.phoneAuthOK["allowedCommands"] == ["runtime_request.respond", "thread.select"])

            try await phone.sendCommand(name: "thread.send_message", fields: ["threadID": "t1", "text": "rm -rf"])
            let error = try await Self.next("relay.error", on: phone.socket)
            #expect(error["error"]?.stringValue == "scope_denied")
            #expect(error["message"]?.stringValue == "This device is not allowed to send 'thread.send_message'.")

            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "t2"])
            let frames = try await Self.quietFrames(desktop.socket)
            let commands = frames.filter { $0["payload"]?["type"]?.stringValue == "command" }
            #expect(commands.count == 1)
            #expect(commands.first?["payload"]?["payload"]?["name"]?.stringValue == "thread.select")
            // The denied command used no seq: the allowed one after it was seq 2, and was accepted.
            #expect(commands.first?["seq"]?.intValue == 2)
        }
    }

    @Test func aDecisionWithAnUnusableGrantIsRefusedAndTheRequestStaysPending() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            let phone = RelayPhone(baseURL: relay.baseURL)
            #expect(try await desktop.startPairing().status == 200)
            _ = try await desktop.connect()
            let joinToken = desktop.joinToken, sessionID = desktop.sessionID
            let join = Task { try await phone.join(sessionID: sessionID, joinToken: joinToken, deviceName: "P") }
            let request = try await desktop.nextPairRequest()
            for (fields, message) in [
                (["scope": JSONValue.string("admin")], #"scope must be "control" or "view"."#),
                (["allowedCommands": ["thread.select", "shell.exec"]], "allowedCommands may only name"),
                (["grantExpiresAt": .string("2001-01-01T00:00:00Z")], "grantExpiresAt must be in the future."),
                (["grantExpiresAt": .string("tomorrow")], "grantExpiresAt must be an RFC 3339 timestamp."),
            ] as [([String: JSONValue], String)] {
                try await desktop.decide(requestID: request.requestID, approved: true, fields: fields)
                let error = try await Self.next("relay.error", on: desktop.socket)
                #expect(error["error"]?.stringValue == "invalid_scope")
                #expect(error["message"]?.stringValue?.hasPrefix(message) == true, "\(error)")
            }
            try await desktop.decide(requestID: request.requestID, approved: true, fields: ["scope": "view"])
            let joined = try await join.value
            #expect(joined.status == 200)
            let auth = try await phone.connect()
            #expect(auth["scope"]?.stringValue == "view")
        }
    }

    @Test func devicesScopeChecksItsInputLikeRevokeAndNamesWhatIsWrong() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            let phone = RelayPhone(baseURL: relay.baseURL)
            _ = try await RelayPairing.pairConnected(desktop: desktop, phone: phone)
            let deviceID = try #require(phone.deviceID)

            let missing = try await desktop.setScope(deviceID, fields: [:])
            #expect(missing.status == 400 && missing.errorCode == "invalid_scope")
            let wrong = try await desktop.setScope(deviceID, fields: ["scope": "root"])
            #expect(wrong.status == 400 && wrong.errorCode == "invalid_scope")
            let past = try await desktop.setScope(deviceID, fields: ["scope": "view", "grantExpiresAt": "2001-01-01T00:00:00Z"])
            #expect(past.status == 400 && past.errorMessage == "grantExpiresAt must be in the future.")
            let unknown = try await desktop.setScope("dev_unknown000000", fields: ["scope": "view"])
            #expect(unknown.status == 404 && unknown.errorCode == "device_not_found")
            let badID = try await desktop.setScope("", fields: ["scope": "view"])
            #expect(badID.status == 400 && badID.errorCode == "invalid_scope")

            let impostor = RelayDesktop(baseURL: relay.baseURL, sessionID: desktop.sessionID, desktopSessionToken: opaque())
            let forbidden = try await impostor.setScope(deviceID, fields: ["scope": "view"])
            #expect(forbidden.status == 403 && forbidden.errorCode == "invalid_desktop_session_token")
            // Nothing refused changed the device: it still has the contract's entry, no grant.
            let entry = try #require((try await desktop.listDevices().json())["devices"]?[0])
            #expect(entry["scope"] == nil)
        }
    }

    @Test func theDefaultScopeAppliesWhenADecisionNamesNone() async throws {
        try await withRelay({ $0["DEFAULT_DEVICE_SCOPE"] = "view" }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            let phone = RelayPhone(baseURL: relay.baseURL)
            let paired = try await RelayPairing.pairConnected(desktop: desktop, phone: phone)
            #expect(paired.phoneAuthOK["scope"]?.stringValue == "view")
            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"])
            let error = try await Self.next("relay.error", on: phone.socket)
            #expect(error["error"]?.stringValue == "scope_denied")
        }
    }

    // MARK: Cluster

    @Test func aScopeChangeReachesAPhoneOnAnotherNodeWithinASecond() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(1))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(2))
            let deviceID = try #require(phone.deviceID)

            let started = ContinuousClock.now
            let viaOtherNode = RelayDesktop(baseURL: cluster.baseURL(1), sessionID: desktop.sessionID, desktopSessionToken: desktop.desktopSessionToken)
            #expect(try await viaOtherNode.setScope(deviceID, fields: ["scope": "view"]).status == 200)
            let scope = try await Self.next("relay.scope", on: phone.socket, timeout: .seconds(5))
            let elapsed = ContinuousClock.now - started
            #expect(scope["scope"]?.stringValue == "view")
            #expect(elapsed < .seconds(1), "the scope change took \(elapsed)")

            // Node 2 enforces it: the command is refused there and never reaches node 0's desktop.
            try await phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"])
            let error = try await Self.next("relay.error", on: phone.socket)
            #expect(error["message"]?.stringValue == Self.viewOnly)
            #expect(!(try await Self.quietFrames(desktop.socket)).contains { $0["payload"]?["type"]?.stringValue == "command" })
        }
    }

    @Test func grantExpiresAtEndsThePhonesSocketsAndTokensOnEveryNode() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(1))
            let end = Date().addingTimeInterval(3)
            let paired = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(2),
                decisionFields: ["scope": "control", "grantExpiresAt": .string(RelayTimestamp.rfc3339(end))])
            #expect(paired.phoneAuthOK["grantExpiresAt"]?.stringValue != nil)
            let tokens = [phone.deviceSessionToken, phone.previousToken].compactMap { $0 }

            let (texts, code) = try await phone.socket.readUntilClosed(.seconds(30))
            let closedAt = Date()
            #expect(texts.last == #"{"reason":"device_expired","type":"disconnect"}"#)
            #expect(code == 1008)
            #expect(closedAt >= end.addingTimeInterval(-0.001), "closed before the grant's end")

            for node in 0..<3 {
                for token in tokens {
                    let socket = try await phone.openSocket(url: cluster.socketURL(node))
                    try await socket.sendText(JSONValue.object(["type": "relay.auth", "token": .string(token)]).serialized)
                    let (refusal, refusalCode) = try await socket.readUntilClosed(.seconds(10))
                    #expect(refusal == [#"{"reason":"device_expired","type":"disconnect"}"#], "node \(node)")
                    #expect(refusalCode == 1008)
                }
            }
            let metrics = try await cluster.prometheus(2)
            #expect(metrics.contains("relay_device_grants_expired_total 1"))
        }
    }
}

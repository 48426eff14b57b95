import Foundation
import RelayTestClient
import RelayTestSupport
import Testing

/// PROTOCOL §4: auth, rotation, routing, validation, limits, heartbeats and frame order.
@Suite("WebSocket protocol", .timeLimit(.minutes(2)))
struct WebSocketProtocolTests {
    // MARK: Auth

    @Test func unknownTokenGetsSessionExpiredThenPolicyClose() async throws {
        try await withRelay { relay in
            let socket = try await RelayWebSocket.connect(to: relay.wsURL)
            try await socket.sendText(#"{"type":"relay.auth","token":"\#(opaque())"}"#)
            let (texts, code) = try await socket.readUntilClosed()
            #expect(texts == [#"{"reason":"session_expired","type":"disconnect"}"#])
            #expect(code == 1008)
            let m = try await relay.metrics()
            #expect(m["wsAuthAttempts"]?.intValue == 1)
            #expect(m["wsAuthSuccesses"]?.intValue == 0)
            #expect(m["wsAuthFailures"]?.intValue == 1)
            #expect(m["wsAuthFailureReasons"]?["token_not_found"]?.intValue == 1)
            #expect(relay.logs.contains("ws_auth_failure reason=token_not_found remote_ip=127.0.0.1 user_agent="))
        }
    }

    @Test func closeFrameOneThousandEightFollowsSessionExpiredImmediately() async throws {
        try await withRelay { relay in
            let socket = try await RelayWebSocket.connect(to: relay.wsURL)
            try await socket.sendText(#"{"type":"relay.auth","token":"\#(opaque())"}"#)
            #expect(try await socket.next(timeout: .seconds(5)) == .text(#"{"reason":"session_expired","type":"disconnect"}"#))
            guard case .close(let code, let reason)? = try await socket.next(timeout: .seconds(5)) else {
                Issue.record("expected a close frame next")
                return
            }
            #expect(code == 1008)
            #expect(reason == "session_expired")
        }
    }

    @Test func malformedFirstFramesFailAuth() async throws {
        try await withRelay { relay in
            let notJSON = try await RelayWebSocket.connect(to: relay.wsURL)
            try await notJSON.sendText("hello")
            let (texts, _) = try await notJSON.readUntilClosed()
            #expect(texts == ["{}"])

            let wrongType = try await RelayWebSocket.connect(to: relay.wsURL)
            try await wrongType.sendText(#"{"type":"auth","token":"\#(opaque())"}"#)
            #expect(try await wrongType.readUntilClosed().texts.isEmpty)

            let shortToken = try await RelayWebSocket.connect(to: relay.wsURL)
            try await shortToken.sendText(#"{"type":"relay.auth","token":"short"}"#)
            #expect(try await shortToken.readUntilClosed().texts.isEmpty)

            let ping = try await RelayWebSocket.connect(to: relay.wsURL)
            try await ping.sendPing()
            #expect(try await ping.readUntilClosed().texts == ["{}"])

            let reasons = try await relay.metrics()["wsAuthFailureReasons"]
            #expect(reasons?["auth_timeout_or_missing_payload"]?.intValue == 2)
            #expect(reasons?["invalid_auth_payload"]?.intValue == 2)
        }
    }

    @Test func silentSocketTimesOutAuth() async throws {
        // Long enough for the client to finish its own side of the upgrade on a busy machine
        // before the relay gives up on it.
        try await withRelay({ $0["WS_AUTH_TIMEOUT_MS"] = "1000" }) { relay in
            let socket = try await RelayWebSocket.connect(to: relay.wsURL)
            let (texts, code) = try await socket.readUntilClosed()
            #expect(texts == ["{}"])
            #expect(code == 1008)
            #expect(try await relay.metrics()["wsAuthFailureReasons"]?["auth_timeout_or_missing_payload"]?.intValue == 1)
        }
    }

    @Test func pairingRequiresDesktopApprovalAndHandlesDesktopReconnect() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let desktopOK = paired.desktopAuthOK
            #expect(desktopOK["type"]?.stringValue == "auth_ok")
            #expect(desktopOK["role"]?.stringValue == "desktop")
            #expect(desktopOK["desktopConnected"]?.boolValue == true)
            #expect(desktopOK["connectedDeviceCount"]?.intValue == 0)
            #expect(paired.pairRequest.frame["type"]?.stringValue == "relay.pair_request")
            #expect(paired.pairRequest.frame["sessionID"]?.stringValue == paired.desktop.sessionID)
            #expect(paired.pairResult?["approved"]?.boolValue == true)
            #expect(paired.deviceCount?["connectedDeviceCount"]?.intValue == 1)

            let phoneOK = paired.phoneAuthOK
            #expect(phoneOK["role"]?.stringValue == "mobile")
            #expect(phoneOK["deviceID"]?.stringValue == paired.phone.deviceID)
            #expect(phoneOK["desktopConnected"]?.boolValue == true)
            #expect(phoneOK["connectedDeviceCount"]?.intValue == 1)
            let next = try #require(phoneOK["nextDeviceSessionToken"]?.stringValue)
            #expect(next.count == 43)
            #expect(next != paired.phone.previousToken)

            await paired.desktop.disconnect()
            let offline = try await paired.phone.socket.nextFrame()
            #expect(offline["type"]?.stringValue == "relay.desktop_status")
            #expect(offline["desktopConnected"]?.boolValue == false)
            try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"], seq: 10)
            let error = try await paired.phone.socket.nextFrame()
            #expect(error["type"]?.stringValue == "relay.error")
            #expect(error["error"]?.stringValue == "desktop_offline")
            #expect(error["message"]?.stringValue == "Mac is offline. Reconnect desktop and try again.")

            let again = try await paired.desktop.connect()
            #expect(again["desktopConnected"]?.boolValue == true)
            #expect(again["connectedDeviceCount"]?.intValue == 1)
            let online = try await paired.phone.socket.nextFrame()
            #expect(online["desktopConnected"]?.boolValue == true)
            try await paired.phone.sendCommand(name: "thread.select", commandID: "cmd-11", fields: ["threadID": "t1"], seq: 11)
            let forwarded = try await paired.desktop.socket.nextFrame()
            #expect(forwarded["seq"]?.intValue == 11)
            #expect(forwarded["payload"]?["payload"]?["commandID"]?.stringValue == "cmd-11")
        }
    }

    /// With several event loops a phone and its desktop usually sit on different threads, so every
    /// delivery crosses from one loop to another: commands and events still arrive, in order.
    @Test func roundTripsCrossEventLoopsWhenThereAreSeveral() async throws {
        try await withRelay({ $0["EVENT_LOOP_THREADS"] = "3" }) { relay in
            let sessions = try await withThrowingTaskGroup(of: RelayPairedSession.self) { group in
                for _ in 0..<4 { group.addTask { try await RelayPairing.pairConnected(baseURL: relay.baseURL) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for paired in sessions {
                for seq in UInt64(1)...5 {
                    try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"], seq: seq)
                    let command = try await paired.desktop.socket.nextFrame()
                    #expect(command["seq"]?.uint64Value == seq)
                    let sent = try await paired.desktop.sendEvent(seq: seq)
                    #expect(try await paired.phone.socket.nextText(timeout: .seconds(30)) == sent)
                }
            }
        }
    }

    @Test func desktopReconnectWhileOldSocketOpenKeepsTheNewSocket() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let oldSocket = try paired.desktop.socket
            let second = RelayDesktop(
                baseURL: relay.baseURL, sessionID: paired.desktop.sessionID,
                desktopSessionToken: paired.desktop.desktopSessionToken, wsURL: relay.wsURL)
            _ = try await second.connect()
            let (texts, _) = try await oldSocket.readUntilClosed()
            #expect(texts == [#"{"reason":"desktop_reconnected","type":"disconnect"}"#])
            // The old socket's cleanup must not clear the new one (DECISIONS 2).
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await relay.metrics()["sessionsWithDesktop"]?.intValue == 1)
            try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"])
            #expect(try await second.socket.nextFrame()["payload"]?["type"]?.stringValue == "command")
        }
    }

    @Test func trustedMobileReauthsWhileDesktopOfflineWithoutRepairing() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            await paired.desktop.disconnect()
            await paired.phone.disconnect()
            // The client's close reaches the relay asynchronously: wait until it has seen it.
            try #require(await eventually(timeout: .seconds(30)) { try await relay.metrics()["sessionsWithDesktop"]?.intValue == 0 })
            let firstRotation = paired.phone.deviceSessionToken
            let again = try await paired.phone.connect()
            #expect(again["type"]?.stringValue == "auth_ok")
            #expect(again["role"]?.stringValue == "mobile")
            #expect(again["desktopConnected"]?.boolValue == false)
            #expect(again["nextDeviceSessionToken"]?.stringValue != firstRotation)
        }
    }

    @Test func staleMobileTokenEmitsSessionExpiredAndPolicyClose() async throws {
        try await withRelay({ $0["TOKEN_ROTATION_GRACE_MS"] = "0" }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let original = try #require(paired.phone.previousToken)
            let socket = try await RelayWebSocket.connect(to: relay.wsURL, headers: [("Origin", allowedOrigin)])
            try await socket.sendText(#"{"type":"relay.auth","token":"\#(original)"}"#)
            let (texts, code) = try await socket.readUntilClosed()
            #expect(texts == [#"{"reason":"session_expired","type":"disconnect"}"#])
            #expect(code == 1008)
        }
    }

    @Test func graceTokenWorksUntilItExpires() async throws {
        // The grace runs on the node's clock, which stands still until the test moves it.
        let clock = ManualClock()
        try await withRelay(clock: clock, { $0["TOKEN_ROTATION_GRACE_MS"] = "3000" }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let original = try #require(paired.phone.previousToken)
            #expect(try await relay.metrics()["deviceTokens"]?.intValue == 2)
            await paired.phone.disconnect()
            // Within grace the original token still authenticates, and rotates again.
            let viaGrace = try await paired.phone.connect(token: original)
            #expect(viaGrace["type"]?.stringValue == "auth_ok")
            await paired.phone.disconnect()
            clock.advance(byMillis: 3000)
            let late = try await RelayWebSocket.connect(to: relay.wsURL, headers: [("Origin", allowedOrigin)])
            try await late.sendText(#"{"type":"relay.auth","token":"\#(original)"}"#)
            #expect(try await late.readUntilClosed().closeCode == 1008)
            // The rotated token still works.
            #expect(try await paired.phone.connect()["type"]?.stringValue == "auth_ok")
        }
    }

    @Test func mobileAuthNeedsAnAllowedOrigin() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            await paired.phone.disconnect()
            let socket = try await RelayWebSocket.connect(to: relay.wsURL)
            try await socket.sendText(#"{"type":"relay.auth","token":"\#(paired.phone.deviceSessionToken!)"}"#)
            let (texts, _) = try await socket.readUntilClosed()
            #expect(texts.isEmpty)
            #expect(try await relay.metrics()["wsAuthFailureReasons"]?["mobile_origin_not_allowed"]?.intValue == 1)
        }
    }

    @Test func sameDeviceReconnectReplacesItsOldSocket() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let oldSocket = try paired.phone.socket
            _ = try await paired.phone.connect()
            #expect(try await oldSocket.readUntilClosed().texts == [#"{"reason":"device_reconnected","type":"disconnect"}"#])
            #expect(try await relay.metrics()["sessionsWithMobile"]?.intValue == 1)
        }
    }

    @Test func admissionCapRejectsNewSocketsWithOverCapacity() async throws {
        try await withRelay({ $0["MAX_ACTIVE_WEBSOCKET_CONNECTIONS"] = "1" }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            let other = RelayDesktop(baseURL: relay.baseURL)
            try await other.startPairing()
            let socket = try await other.openSocket()
            try await socket.sendText(#"{"type":"relay.auth","token":"\#(other.desktopSessionToken)"}"#)
            let (texts, code) = try await socket.readUntilClosed()
            #expect(texts == [#"{"reason":"relay_over_capacity","type":"disconnect"}"#])
            #expect(code == 1013)
            // An unknown token still hears session_expired when full: validity is checked first.
            let unknown = try await RelayWebSocket.connect(to: relay.wsURL)
            try await unknown.sendText(#"{"type":"relay.auth","token":"\#(opaque())"}"#)
            #expect(try await unknown.readUntilClosed().texts == [#"{"reason":"session_expired","type":"disconnect"}"#])
            // A reconnect of the held desktop does not grow the count and passes.
            let again = RelayDesktop(baseURL: relay.baseURL, sessionID: desktop.sessionID, desktopSessionToken: desktop.desktopSessionToken, wsURL: relay.wsURL)
            #expect(try await again.connect()["type"]?.stringValue == "auth_ok")
            let m = try await relay.metrics()
            #expect(m["outboundSendFailures"]?.intValue == 0)
            #expect(m["wsAuthFailureReasons"]?["relay_over_capacity"]?.intValue == 1)
            #expect(relay.logs.contains("ws_auth_failure reason=relay_over_capacity active=1 limit=1 remote_ip=127.0.0.1"))
        }
    }

    @Test func mobileSocketsPerSessionAreCapped() async throws {
        try await withRelay({ $0["MAX_DEVICES_PER_SESSION"] = "2" }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.desktop.refreshJoinToken()
            let second = try await approveAnotherPhone(paired.desktop, relay: relay)
            #expect(try await second.connect()["connectedDeviceCount"]?.intValue == 2)
        }
    }

    @Test func legacyQueryTokenAuthenticatesWithoutAnAuthFrame() async throws {
        try await withRelay({ $0["ALLOW_LEGACY_QUERY_TOKEN_AUTH"] = "true" }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            let socket = try await RelayWebSocket.connect(to: relay.wsURL + "?token=" + desktop.desktopSessionToken)
            #expect(try await socket.nextFrame()["type"]?.stringValue == "auth_ok")
        }
    }

    // MARK: Mobile → desktop

    @Test func forwardedCommandsCarryRelayAssignedIdentity() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.phone.socket.sendText(#"""
                {"schemaVersion":2,"sessionID":"\#(paired.desktop.sessionID)","seq":1,"relayConnectionID":"spoof","relayDeviceID":"spoof",
                 "payload":{"type":"command","payload":{"name":"runtime_request.respond","commandID":"c-1","runtimeRequestID":"42",
                 "runtimeRequestKind":"userInput","runtimeRequestResponse":{"text":"b","optionID":"choice-b"}}}}
                """#)
            let forwarded = try await paired.desktop.socket.nextFrame()
            #expect(forwarded["relayDeviceID"]?.stringValue == paired.phone.deviceID)
            let connectionID = try #require(forwarded["relayConnectionID"]?.stringValue)
            #expect(connectionID != "spoof")
            #expect(connectionID.count == 14)
            #expect(forwarded["payload"]?["payload"]?["runtimeRequestResponse"]?["optionID"]?.stringValue == "choice-b")
            try await expectNothingQueued(forPhone: paired.phone.socket, after: paired.desktop.socket)
        }
    }

    @Test func invalidMobileCommandIsRejectedAndNotForwarded() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.phone.sendCommand(name: "terminal.exec", fields: ["text": "rm -rf /"])
            let error = try await paired.phone.socket.nextFrame()
            #expect(error["error"]?.stringValue == "invalid_command")
            #expect(error["message"]?.stringValue == "Command name is not allowed.")
            try await expectNothingQueued(forDesktop: paired.desktop.socket)

            try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t", "unexpectedField": true])
            #expect(try await paired.phone.socket.nextFrame()["message"]?.stringValue == "Unexpected field 'unexpectedField' in command payload.")
            try await expectNothingQueued(forDesktop: paired.desktop.socket)
        }
    }

    @Test func commandWithoutCommandIDIsRejected() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.phone.socket.sendText(
                #"{"schemaVersion":2,"sessionID":"\#(paired.desktop.sessionID)","seq":1,"payload":{"type":"command","payload":{"name":"thread.select","threadID":"t"}}}"#)
            let error = try await paired.phone.socket.nextFrame()
            #expect(error["error"]?.stringValue == "invalid_command")
            #expect(error["message"]?.stringValue?.localizedCaseInsensitiveContains("commandID") == true)
            try await expectNothingQueued(forDesktop: paired.desktop.socket)
        }
    }

    @Test func nonJSONAndForeignSessionFrames() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.phone.socket.sendText("not json")
            #expect(try await paired.phone.socket.nextFrame()["message"]?.stringValue == "Payload must be valid JSON.")
            try await paired.phone.socket.sendText("[1]")
            #expect(try await paired.phone.socket.nextFrame()["message"]?.stringValue == "Payload must be a JSON object.")
            // A frame naming another session is dropped silently.
            try await paired.phone.socket.sendText(#"{"type":"relay.snapshot_request","sessionID":"\#(opaque(22))"}"#)
            try await expectNoAnswerToEarlierFrames(ofPhone: paired.phone.socket)
            try await expectNothingQueued(forDesktop: paired.desktop.socket)
            // Binary frames are ignored.
            try await paired.phone.socket.sendBinary([1, 2, 3])
            try await expectNoAnswerToEarlierFrames(ofPhone: paired.phone.socket)
        }
    }

    @Test func snapshotRequestsAreValidatedAndForwarded() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let sid = paired.desktop.sessionID
            try await paired.phone.socket.sendText(#"{"type":"relay.snapshot_request","sessionID":"\#(sid)","lastSeq":-1}"#)
            let error = try await paired.phone.socket.nextFrame()
            #expect(error["error"]?.stringValue == "invalid_snapshot_request")
            #expect(error["message"]?.stringValue == "lastSeq must be numeric when provided.")
            try await expectNothingQueued(forDesktop: paired.desktop.socket)

            try await paired.phone.socket.sendText(#"{"type":"relay.snapshot_request","sessionID":"\#(sid)","lastSeq":"42","reason":"resync"}"#)
            let forwarded = try await paired.desktop.socket.nextFrame()
            #expect(forwarded["type"]?.stringValue == "relay.snapshot_request")
            #expect(forwarded["lastSeq"]?.stringValue == "42")
            #expect(forwarded["relayDeviceID"]?.stringValue == paired.phone.deviceID)
            try await expectNothingQueued(forPhone: paired.phone.socket, after: paired.desktop.socket)
        }
    }

    @Test func replayedCommandSequenceIsRejected() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let envelope = #"{"schemaVersion":2,"sessionID":"\#(paired.desktop.sessionID)","seq":1,"payload":{"type":"command","payload":{"name":"thread.select","commandID":"c1","threadID":"t"}}}"#
            try await paired.phone.socket.sendText(envelope)
            #expect(try await paired.desktop.socket.nextFrame()["seq"]?.intValue == 1)
            try await paired.phone.socket.sendText(envelope)
            let error = try await paired.phone.socket.nextFrame()
            #expect(error["error"]?.stringValue == "replayed_command")
            #expect(error["message"]?.stringValue == "Command sequence was replayed or out of order.")
            try await expectNothingQueued(forDesktop: paired.desktop.socket)
            // The tracker is per connection: a new connection starts again at 1. The reconnect's
            // device counts may reach the desktop after any quiet window, so skip to the command.
            _ = try await paired.phone.reconnect()
            try await paired.phone.socket.sendText(envelope)
            #expect(try await paired.desktop.socket.nextFrame(ofType: "command", inPayload: true)["seq"]?.intValue == 1)
        }
    }

    @Test func perDeviceCommandBudgetBlocksExcessCommands() async throws {
        try await withRelay({ $0["MAX_REMOTE_COMMANDS_PER_MINUTE"] = "2" }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            for _ in 0..<2 {
                try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t"])
                #expect(try await paired.desktop.socket.nextFrame()["payload"]?["type"]?.stringValue == "command")
            }
            try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t"])
            let error = try await paired.phone.socket.nextFrame()
            #expect(error["error"]?.stringValue == "command_rate_limited")
            #expect(error["message"]?.stringValue == "Too many remote commands from this device. Retry shortly.")
            try await expectNothingQueued(forDesktop: paired.desktop.socket)
            #expect(try await relay.metrics()["commandRateLimitBuckets"]?.intValue == 1)
        }
    }

    @Test func perSessionCommandBudgetBlocksExcessCommands() async throws {
        try await withRelay({
            $0["MAX_REMOTE_COMMANDS_PER_MINUTE"] = "10"
            $0["MAX_REMOTE_SESSION_COMMANDS_PER_MINUTE"] = "2"
        }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            for _ in 0..<2 {
                try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t"])
                _ = try await paired.desktop.socket.nextFrame()
            }
            try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t"])
            let error = try await paired.phone.socket.nextFrame()
            #expect(error["error"]?.stringValue == "command_rate_limited")
            #expect(error["message"]?.stringValue == "Remote command throughput for this session is temporarily saturated.")
            try await expectNothingQueued(forDesktop: paired.desktop.socket)
        }
    }

    @Test func perDeviceSnapshotBudgetBlocksExcessRequests() async throws {
        try await withRelay({ $0["MAX_SNAPSHOT_REQUESTS_PER_MINUTE"] = "2" }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            for _ in 0..<2 {
                try await paired.phone.requestSnapshot()
                #expect(try await paired.desktop.socket.nextFrame()["type"]?.stringValue == "relay.snapshot_request")
            }
            try await paired.phone.requestSnapshot()
            let error = try await paired.phone.socket.nextFrame()
            #expect(error["error"]?.stringValue == "snapshot_rate_limited")
            #expect(error["message"]?.stringValue == "Too many snapshot requests from this device. Retry shortly.")
            #expect(try await relay.metrics()["snapshotRateLimitBuckets"]?.intValue == 1)
        }
    }

    @Test func perSocketMessageRateDisconnectsAbusiveClient() async throws {
        try await withRelay({
            $0["MAX_WS_MESSAGES_PER_MINUTE"] = "2"
            $0["MAX_REMOTE_COMMANDS_PER_MINUTE"] = "1000"
            $0["MAX_REMOTE_SESSION_COMMANDS_PER_MINUTE"] = "1000"
        }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            for _ in 0..<2 {
                try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t"])
                _ = try await paired.desktop.socket.nextFrame()
            }
            try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t"])
            let (texts, code) = try await paired.phone.socket.readUntilClosed()
            #expect(texts == [#"{"reason":"socket_rate_limited","type":"disconnect"}"#])
            #expect(code == 1008)
            // The offending frame was not processed.
            let rest = try await paired.desktop.socket.drain(idle: .milliseconds(150))
            #expect(!rest.contains { $0.text?.contains("\"command\"") == true })
        }
    }

    @Test func oversizedMessageIsDisconnectedAsTooLarge() async throws {
        try await withRelay({ $0["MAX_WS_MESSAGE_BYTES"] = "1024" }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.phone.socket.sendText(String(repeating: "x", count: 2048))
            let (texts, code) = try await paired.phone.socket.readUntilClosed()
            #expect(texts == [#"{"reason":"message_too_large","type":"disconnect"}"#])
            #expect(code == 1009)
        }
    }

    // MARK: Desktop → mobile

    @Test func desktopFramesReachEveryPhoneByteExact() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.desktop.refreshJoinToken()
            let second = try await approveAnotherPhone(paired.desktop, relay: relay)
            _ = try await second.connect()
            _ = try await paired.desktop.socket.drain()
            let odd = "{ \"payload\" :{\"type\":\"event\",\"b\":1,\"a\":\"\\u00e9/\"},\"sessionID\":\"\(paired.desktop.sessionID)\"  }"
            try await paired.desktop.socket.sendText(odd)
            #expect(try await paired.phone.socket.nextText(timeout: .seconds(5)) == odd)
            #expect(try await second.socket.nextText(timeout: .seconds(5)) == odd)
            try await paired.desktop.socket.sendText("not even json")
            #expect(try await paired.phone.socket.nextText(timeout: .seconds(5)) == "not even json")
        }
    }

    @Test func desktopEventsArriveInOrder() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            for seq in 1...50 { try await paired.desktop.sendEvent(seq: UInt64(seq)) }
            for seq in 1...50 {
                #expect(try await paired.phone.socket.nextFrame()["seq"]?.intValue == seq)
            }
        }
    }

    @Test func pairDecisionIsConsumedNotForwardedAndAnsweredEvenWhenUnknown() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.desktop.socket.sendText(#"{"type":"relay.pair_decision","requestID":"nope","approved":true}"#)
            let result = try await paired.desktop.socket.nextFrame()
            #expect(result["type"]?.stringValue == "relay.pair_result")
            #expect(result["requestID"]?.stringValue == "nope")
            #expect(result["approved"]?.boolValue == true)
            try await expectNothingQueued(forPhone: paired.phone.socket, after: paired.desktop.socket)
            // A decision with a wrongly typed field is not a decision: it is broadcast.
            let odd = #"{"type":"relay.pair_decision","requestID":"x","approved":"yes"}"#
            try await paired.desktop.socket.sendText(odd)
            #expect(try await paired.phone.socket.nextText(timeout: .seconds(5)) == odd)
        }
    }

    @Test func desktopFrameWithForeignSessionIDIsDropped() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.desktop.socket.sendText(#"{"sessionID":"\#(opaque(22))","payload":{"type":"event"}}"#)
            try await expectNothingQueued(forPhone: paired.phone.socket, after: paired.desktop.socket)
        }
    }

    // MARK: Session end

    @Test func pairStopClosesSessionAndForcesRepair() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            #expect(try await paired.desktop.stop().status == 200)
            let stopped = #"{"reason":"stopped_by_desktop","type":"disconnect"}"#
            #expect(try await paired.phone.socket.readUntilClosed().texts == [stopped])
            #expect(try await paired.desktop.socket.readUntilClosed().texts == [stopped])
            let phoneAgain = try await paired.phone.openSocket()
            try await phoneAgain.sendText(#"{"type":"relay.auth","token":"\#(paired.phone.deviceSessionToken!)"}"#)
            #expect(try await phoneAgain.readUntilClosed().texts == [#"{"reason":"session_expired","type":"disconnect"}"#])
            let desktopAgain = try await paired.desktop.openSocket()
            try await desktopAgain.sendText(#"{"type":"relay.auth","token":"\#(paired.desktop.desktopSessionToken)"}"#)
            let (texts, code) = try await desktopAgain.readUntilClosed()
            #expect(texts == [#"{"reason":"session_expired","type":"disconnect"}"#])
            #expect(code == 1008)
            #expect(try await relay.metrics()["deviceTokens"]?.intValue == 0)
        }
    }

    // MARK: Heartbeat and backpressure

    @Test func firstPingComesAfterOneIntervalAndSilenceTimesOut() async throws {
        try await withRelay({
            $0["WS_HEARTBEAT_INTERVAL_MS"] = "1000"
            $0["WS_HEARTBEAT_TIMEOUT_MS"] = "2000"
        }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            let socket = try await desktop.openSocket(autoReplyPings: false)
            let authed = ContinuousClock.now
            try await socket.sendText(#"{"type":"relay.auth","token":"\#(desktop.desktopSessionToken)"}"#)
            #expect(try await socket.next(timeout: .seconds(30))?.text?.contains("auth_ok") == true)
            // Upper bounds are for a broken relay: each wait ends with its event.
            guard case .ping? = try await socket.next(timeout: .seconds(30)) else {
                Issue.record("expected a ping")
                return
            }
            #expect(ContinuousClock.now - authed >= .milliseconds(950))
            // Not answering: the relay gives up after the timeout.
            let (texts, code) = try await socket.readUntilClosed(.seconds(30))
            #expect(texts == [#"{"reason":"heartbeat_timeout","type":"disconnect"}"#])
            #expect(code == 1001)
        }
    }

    @Test func pongsKeepAQuietSocketAlive() async throws {
        try await withRelay({
            $0["WS_HEARTBEAT_INTERVAL_MS"] = "1000"
            $0["WS_HEARTBEAT_TIMEOUT_MS"] = "2000"
        }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            try await Task.sleep(for: .milliseconds(3500))
            #expect(try desktop.socket.isOpen)
            #expect(try await relay.metrics()["sessionsWithDesktop"]?.intValue == 1)
        }
    }

    @Test func phoneThatStopsReadingIsDisconnectedAsSlowConsumer() async throws {
        try await withRelay({ $0["MAX_SOCKET_OUTBOUND_QUEUE"] = "8" }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let healthy = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.phone.socket.pauseReading()
            let payload = String(repeating: "x", count: 60_000)
            var sent = 0
            while sent < 2_000 {
                try await paired.desktop.socket.sendText(#"{"payload":{"type":"event","blob":"\#(payload)"}}"#)
                sent += 1
                if sent % 20 == 0, try await relay.metrics()["slowConsumerDisconnects"]?.intValue == 1 { break }
            }
            let m = try await relay.metrics()
            #expect(m["slowConsumerDisconnects"]?.intValue == 1)
            #expect(m["outboundSendFailures"]?.intValue ?? 0 >= 1)
            #expect(relay.logs.contains("slow_consumer_disconnect"))
            // Another session is not slowed down by it.
            try await healthy.desktop.sendEvent(seq: 1)
            #expect(try await healthy.phone.socket.nextFrame(.seconds(2))["seq"]?.intValue == 1)
            try await paired.phone.socket.resumeReading()
            _ = try await paired.phone.socket.waitForClosed(timeout: .seconds(10))
        }
    }
}

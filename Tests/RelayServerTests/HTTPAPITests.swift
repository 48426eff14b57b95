import Foundation
import RelayTestClient
import RelayLocalCluster
import RelayTestSupport
import Testing

/// PROTOCOL §2: the HTTP API, its check order, status codes, codes and messages.
@Suite("HTTP API", .timeLimit(.minutes(2)))
struct HTTPAPITests {
    @Test func healthzReportsOK() async throws {
        try await withRelay { relay in
            let response = try await relay.http.get("/healthz")
            #expect(response.status == 200)
            let body = try response.json()
            #expect(body["ok"]?.boolValue == true)
            #expect(body["activeWebSockets"]?.intValue == 0)
            #expect(body["crossInstanceBusEnabled"]?.boolValue == false)
            #expect(body["redisPersistenceEnabled"]?.boolValue == false)
            #expect(body["now"]?.stringValue?.hasSuffix("+00:00") == true)
        }
    }

    @Test func livezAndReadyzAnswerWhileServing() async throws {
        try await withRelay { relay in
            #expect(try await relay.http.get("/livez").status == 200)
            let ready = try await relay.http.get("/readyz")
            #expect(ready.status == 200)
            #expect(try ready.json()["ok"]?.boolValue == true)
        }
    }

    @Test func unknownPathIs404AndWrongMethodIs405WithAllow() async throws {
        try await withRelay { relay in
            let missing = try await relay.http.get("/nope")
            #expect(missing.status == 404)
            #expect(missing.body.isEmpty)
            let wrong = try await relay.http.get("/pair/start")
            #expect(wrong.status == 405)
            #expect(wrong.header("allow") == "POST")
            #expect(wrong.body.isEmpty)
        }
    }

    @Test func plainGetOnWebSocketPathIs400() async throws {
        try await withRelay { relay in
            let response = try await relay.http.get("/ws")
            #expect(response.status == 400)
        }
    }

    @Test func pairingEndpointsIncludeCORSHeadersForAllowedOrigin() async throws {
        try await withRelay { relay in
            let preflight = try await relay.http.send(RelayHTTPRequest(
                method: "OPTIONS", path: "/pair/join",
                headers: [("Origin", allowedOrigin), ("Access-Control-Request-Method", "POST")]))
            #expect((200..<300).contains(preflight.status))
            #expect(preflight.header("access-control-allow-origin") == allowedOrigin)
            #expect(preflight.header("access-control-allow-methods") == "POST,OPTIONS")
            #expect(preflight.header("access-control-allow-headers") == "content-type")

            let disallowed = try await relay.http.send(RelayHTTPRequest(
                method: "OPTIONS", path: "/pair/join", headers: [("Origin", "https://evil.example")]))
            #expect(disallowed.status == 200)
            #expect(disallowed.header("access-control-allow-origin") == nil)
        }
    }

    @Test func bodyRejectionsFollowTheFrameworkOrder() async throws {
        try await withRelay({ $0["MAX_JSON_BYTES"] = "64" }) { relay in
            let notJSON = try await relay.http.send(RelayHTTPRequest(
                method: "POST", path: "/pair/start", headers: [("Content-Type", "text/plain")], body: Array("{}".utf8)))
            #expect(notJSON.status == 415)
            let tooLarge = try await relay.http.send(RelayHTTPRequest(
                method: "POST", path: "/pair/start", headers: [("Content-Type", "application/json")],
                body: Array(String(repeating: " ", count: 100).utf8)))
            #expect(tooLarge.status == 413)
            let syntax = try await relay.http.send(RelayHTTPRequest(
                method: "POST", path: "/pair/start", headers: [("Content-Type", "application/json; charset=utf-8")],
                body: Array("{".utf8)))
            #expect(syntax.status == 400)
            #expect(syntax.bodyText.hasPrefix("Failed to parse the request body as JSON"))
            let vendorJSON = try await relay.http.send(RelayHTTPRequest(
                method: "POST", path: "/pair/stop", headers: [("Content-Type", "application/vnd.api+json")],
                body: Array(#"{"x":1}"#.utf8)))
            #expect(vendorJSON.status == 422)
            // Framework rejections are not counted as requests.
            #expect(try await relay.metrics()["pairStartRequests"]?.intValue == 0)
        }
    }

    @Test func pairStartRejectsUnknownFields() async throws {
        try await withRelay { relay in
            let response = try await relay.post("/pair/start", [
                "sessionID": .string(opaque(22)), "joinToken": .string(opaque()), "desktopSessionToken": .string(opaque()),
                "joinTokenExpiresAt": .string(futureTimestamp()), "unexpected": true,
            ])
            #expect(response.status == 422)
        }
    }

    @Test func pairJoinRejectsSchemaVersionAsUnknownField() async throws {
        try await withRelay { relay in
            let response = try await relay.post("/pair/join", [
                "sessionID": .string(opaque(22)), "joinToken": .string(opaque()), "schemaVersion": 2,
            ])
            #expect(response.status == 422)
        }
    }

    @Test func wrongFieldTypesAre422() async throws {
        try await withRelay { relay in
            for idle in [JSONValue.string("60"), .int(-1), .double(1.5)] {
                let response = try await relay.post("/pair/start", [
                    "sessionID": .string(opaque(22)), "joinToken": .string(opaque()),
                    "desktopSessionToken": .string(opaque()), "joinTokenExpiresAt": .string(futureTimestamp()),
                    "idleTimeoutSeconds": idle,
                ])
                #expect(response.status == 422, "idleTimeoutSeconds \(idle)")
            }
            let missing = try await relay.post("/pair/stop", ["sessionID": .string(opaque(22))])
            #expect(missing.status == 422)
        }
    }

    @Test func pairStartRejectsUnsupportedSchemaVersion() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            let response = try await desktop.startPairing(schemaVersion: 1)
            #expect(response.status == 400)
            #expect(response.errorCode == "unsupported_schema_version")
            #expect(response.errorMessage == "Only schemaVersion 2 is supported.")
            #expect(try await desktop.startPairing(schemaVersion: 2).status == 200)
        }
    }

    @Test func pairStartValidatesTokensAndExpiry() async throws {
        try await withRelay { relay in
            let short = try await relay.post("/pair/start", [
                "sessionID": "short", "joinToken": .string(opaque()), "desktopSessionToken": .string(opaque()),
                "joinTokenExpiresAt": .string(futureTimestamp()),
            ])
            #expect(short.status == 400)
            #expect(short.errorCode == "invalid_pair_start")
            #expect(short.errorMessage == "sessionID, joinToken, and desktopSessionToken must be high-entropy opaque identifiers.")

            let badTime = try await relay.post("/pair/start", [
                "sessionID": .string(opaque(22)), "joinToken": .string(opaque()), "desktopSessionToken": .string(opaque()),
                "joinTokenExpiresAt": "tomorrow",
            ])
            #expect(badTime.errorCode == "invalid_pair_start")
            #expect(badTime.errorMessage == "joinTokenExpiresAt must be a valid RFC3339 timestamp.")

            let past = try await relay.post("/pair/start", [
                "sessionID": .string(opaque(22)), "joinToken": .string(opaque()), "desktopSessionToken": .string(opaque()),
                "joinTokenExpiresAt": "2020-01-01T00:00:00+00:00",
            ])
            #expect(past.status == 400)
            #expect(past.errorCode == "expired_join_token")
            #expect(past.errorMessage == "joinTokenExpiresAt must be in the future.")
        }
    }

    @Test func pairStartNormalizesTheWebSocketURL() async throws {
        try await withRelay({ $0["PUBLIC_BASE_URL"] = "https://relay.example.com/rc" }) { relay in
            let custom = try await RelayDesktop(baseURL: relay.baseURL)
                .startPairing(relayWebSocketURL: "WSS://Relay.Example.com:443?x=1#f")
            #expect(try custom.json()["wsURL"]?.stringValue == "wss://relay.example.com/ws")
            let fallback = try await RelayDesktop(baseURL: relay.baseURL).startPairing(relayWebSocketURL: "https://not-ws.example")
            #expect(try fallback.json()["wsURL"]?.stringValue == "wss://relay.example.com/ws")
        }
    }

    @Test func originNotAllowedIs403AndNotRateCounted() async throws {
        try await withRelay({ $0["MAX_PAIR_REQUESTS_PER_MINUTE"] = "1" }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL, origin: "https://evil.example")
            let rejected = try await desktop.startPairing()
            #expect(rejected.status == 403)
            #expect(rejected.errorCode == "origin_not_allowed")
            #expect(rejected.errorMessage == "Origin is not allowed.")
            #expect(rejected.header("access-control-allow-origin") == nil)
            #expect(try await RelayDesktop(baseURL: relay.baseURL).startPairing().status == 200)
        }
    }

    @Test func perIPBudgetIsSharedByAllPostEndpoints() async throws {
        try await withRelay({ $0["MAX_PAIR_REQUESTS_PER_MINUTE"] = "3" }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            #expect(try await desktop.startPairing().status == 200)
            #expect(try await desktop.listDevices().status == 200)
            #expect(try await relay.post("/pair/join", ["sessionID": "x", "joinToken": "y"]).status == 400)
            let limitedJoin = try await relay.post("/pair/join", ["sessionID": "x", "joinToken": "y"])
            #expect(limitedJoin.status == 429)
            #expect(limitedJoin.errorCode == "rate_limited")
            #expect(limitedJoin.errorMessage == "Too many pairing attempts. Try again in a minute.")
            let limitedList = try await desktop.listDevices()
            #expect(limitedList.errorMessage == "Too many relay management requests. Try again in a minute.")
            #expect(try await relay.metrics()["rateLimitBuckets"]?.intValue == 1)
        }
    }

    @Test func pairStartRejectsReplacingLiveSessionWithDifferentDesktopToken() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            #expect(try await desktop.startPairing().status == 200)
            _ = try await desktop.connect()
            let intruder = RelayDesktop(baseURL: relay.baseURL, sessionID: desktop.sessionID)
            let response = try await intruder.startPairing()
            #expect(response.status == 409)
            #expect(response.errorCode == "session_already_active")
            #expect(response.errorMessage == "sessionID is already active for another desktopSessionToken. Stop the active session or use a new sessionID.")
            await desktop.disconnect()
        }
    }

    @Test func pairStartWithSameTokenReplacesTheSessionAndItsSockets() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let again = RelayDesktop(
                baseURL: relay.baseURL, sessionID: paired.desktop.sessionID,
                desktopSessionToken: paired.desktop.desktopSessionToken)
            #expect(try await again.startPairing().status == 200)
            #expect(try await paired.phone.socket.nextFrame()["reason"]?.stringValue == "replaced_by_new_pair_start")
            #expect(try await paired.desktop.socket.nextFrame()["reason"]?.stringValue == "replaced_by_new_pair_start")
            // Trusted devices were dropped with the old session.
            let devices = try await again.listDevices().json()["devices"]?.arrayValue
            #expect(devices?.isEmpty == true)
        }
    }

    @Test func pairJoinRequiresDesktopConnection() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            let phone = RelayPhone(baseURL: relay.baseURL)
            let response = try await phone.join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
            #expect(response.status == 409)
            #expect(response.errorCode == "desktop_not_connected")
            #expect(response.errorMessage == "Desktop is not connected to relay. Re-open Remote Control on desktop and retry.")
        }
    }

    @Test func pairJoinErrorsInContractOrder() async throws {
        try await withRelay { relay in
            let phone = RelayPhone(baseURL: relay.baseURL)
            let invalid = try await phone.join(sessionID: "bad", joinToken: opaque())
            #expect(invalid.status == 400)
            #expect(invalid.errorCode == "invalid_pair_join")
            #expect(invalid.errorMessage == "sessionID and joinToken are required.")

            let unknown = try await phone.join(sessionID: opaque(22), joinToken: opaque())
            #expect(unknown.status == 404)
            #expect(unknown.errorCode == "session_not_found")
            #expect(unknown.errorMessage == "Remote session not found.")

            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let used = try await phone.join(sessionID: paired.desktop.sessionID, joinToken: opaque())
            #expect(used.status == 409)
            #expect(used.errorCode == "join_token_already_used")
            #expect(used.errorMessage == "Join token has already been redeemed. Start a new session from desktop.")

            try await paired.desktop.refreshJoinToken()
            let wrong = try await phone.join(sessionID: paired.desktop.sessionID, joinToken: opaque())
            #expect(wrong.status == 403)
            #expect(wrong.errorCode == "invalid_join_token")
            #expect(wrong.errorMessage == "Join token is invalid.")
        }
    }

    @Test func pairJoinExpiredTokenIs410() async throws {
        let clock = ManualClock()
        try await withRelay(clock: clock) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL, joinTokenExpiresAt: Date().addingTimeInterval(60))
            #expect(try await desktop.startPairing().status == 200)
            _ = try await desktop.connect()
            clock.advance(byMillis: 120_000)
            let response = try await RelayPhone(baseURL: relay.baseURL).join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
            #expect(response.status == 410)
            #expect(response.errorCode == "join_token_expired")
            #expect(response.errorMessage == "Join token has expired.")
            await desktop.disconnect()
        }
    }

    @Test func deniedPairingIs403AndLeavesTheJoinTokenRedeemable() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            let phone = RelayPhone(baseURL: relay.baseURL)
            async let denied = phone.join(sessionID: desktop.sessionID, joinToken: desktop.joinToken, deviceName: "Denied")
            let request = try await desktop.nextPairRequest()
            #expect(request.deviceName == "Denied")
            try await desktop.decide(requestID: request.requestID, approved: false)
            let response = try await denied
            #expect(response.status == 403)
            #expect(response.errorCode == "pair_request_denied")
            #expect(response.errorMessage == "Desktop denied this pairing request.")
            let result = try await desktop.socket.nextFrame()
            #expect(result["type"]?.stringValue == "relay.pair_result")
            #expect(result["approved"]?.boolValue == false)

            async let approved = phone.join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
            let second = try await desktop.nextPairRequest()
            try await desktop.decide(requestID: second.requestID, approved: true)
            #expect(try await approved.status == 200)
            await desktop.disconnect()
        }
    }

    @Test func secondJoinWhilePendingGetsRequestInProgress() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            let first = RelayPhone(baseURL: relay.baseURL)
            async let pending = first.join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
            let request = try await desktop.nextPairRequest()
            let second = try await RelayPhone(baseURL: relay.baseURL).join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
            #expect(second.status == 409)
            let body = try second.json()
            #expect(body["error"]?.stringValue == "pair_request_in_progress")
            #expect(body["message"]?.stringValue == "A pairing approval request is already pending on desktop.")
            #expect(body["requestID"]?.stringValue == request.requestID)
            #expect(body["expiresAt"]?.stringValue == request.frame["expiresAt"]?.stringValue)
            try await desktop.decide(requestID: request.requestID, approved: true)
            #expect(try await pending.status == 200)
            await desktop.disconnect()
        }
    }

    @Test func desktopDisconnectDuringApprovalFailsTheJoinAt409() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            async let join = RelayPhone(baseURL: relay.baseURL).join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
            _ = try await desktop.nextPairRequest()
            await desktop.disconnect()
            let response = try await join
            #expect(response.status == 409)
            #expect(response.errorCode == "desktop_not_connected")
            #expect(response.errorMessage == "Desktop disconnected before pairing could be approved.")
        }
    }

    @Test func pendingJoinWaiterCapGives503() async throws {
        try await withRelay({ $0["MAX_PENDING_JOIN_WAITERS"] = "1" }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            async let pending = RelayPhone(baseURL: relay.baseURL).join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
            let request = try await desktop.nextPairRequest()
            #expect(try await relay.metrics()["pendingJoinWaiters"]?.intValue == 1)
            let rejected = try await RelayPhone(baseURL: relay.baseURL).join(sessionID: opaque(22), joinToken: opaque())
            #expect(rejected.status == 503)
            #expect(rejected.errorCode == "pairing_backpressure")
            #expect(rejected.errorMessage == "Relay is handling too many pending pairing approvals. Retry shortly.")
            try await desktop.decide(requestID: request.requestID, approved: true)
            #expect(try await pending.status == 200)
            #expect(try await relay.metrics()["pendingJoinWaiters"]?.intValue == 0)
            await desktop.disconnect()
        }
    }

    @Test func unansweredPairRequestTimesOutWith408() async throws {
        let clock = ManualClock()
        try await withRelay(clock: clock, { $0["PAIR_APPROVAL_TIMEOUT_MS"] = "100" }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            try #require(await eventually { clock.sleeperCount >= 1 }, "the sweeper never went to sleep on the clock")
            let sleepersBefore = clock.sleeperCount
            async let join = RelayPhone(baseURL: relay.baseURL).join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
            _ = try await desktop.nextPairRequest()
            // The clock is only advanced once the join waits on it (on a busy machine the request
            // can reach the desktop before its timer starts).
            try #require(await eventually { clock.sleeperCount > sleepersBefore }, "the join never waited on the clock")
            // The wait is floored at 5 s however small the configured timeout: a millisecond
            // short of it the phone is still waiting.
            clock.advance(byMillis: 4_999)
            #expect(try await relay.metrics()["pendingJoinWaiters"]?.intValue == 1)
            clock.advance(byMillis: 1)
            let response = try await join
            #expect(response.status == 408)
            #expect(response.errorCode == "pair_request_timed_out")
            #expect(response.errorMessage == "Desktop pairing approval timed out.")
            await desktop.disconnect()
        }
    }

    @Test func deviceCapBlocksFurtherJoins() async throws {
        try await withRelay({ $0["MAX_DEVICES_PER_SESSION"] = "1" }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            try await paired.desktop.refreshJoinToken()
            let response = try await RelayPhone(baseURL: relay.baseURL)
                .join(sessionID: paired.desktop.sessionID, joinToken: paired.desktop.joinToken)
            #expect(response.status == 409)
            #expect(response.errorCode == "device_cap_reached")
            #expect(response.errorMessage == "This session allows at most 1 connected devices.")
        }
    }

    @Test func pairRefreshRotatesJoinTokenWithoutStoppingSession() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let oldToken = paired.desktop.joinToken
            let refresh = try await paired.desktop.refreshJoinToken()
            #expect(refresh.status == 200)
            // PORT=0 and no PUBLIC_BASE_URL: the default wsURL names the port the system chose.
            #expect(try refresh.json()["wsURL"]?.stringValue == "ws://localhost:\(relay.port)/ws")
            let old = try await RelayPhone(baseURL: relay.baseURL).join(sessionID: paired.desktop.sessionID, joinToken: oldToken)
            #expect(old.status == 403)
            #expect(old.errorCode == "invalid_join_token")

            _ = try await approveAnotherPhone(paired.desktop, relay: relay)
            // The first phone's socket was untouched.
            try await expectNothingQueued(forPhone: paired.phone.socket, after: paired.desktop.socket)
        }
    }

    @Test func managementEndpointsCheckTheDesktopToken() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            let impostor = RelayDesktop(baseURL: relay.baseURL, sessionID: desktop.sessionID)
            for response in [
                try await impostor.refreshJoinToken(), try await impostor.listDevices(),
                try await impostor.revokeDevice(opaque(16)), try await impostor.stop(),
            ] {
                #expect(response.status == 403)
                #expect(response.errorCode == "invalid_desktop_session_token")
                #expect(response.errorMessage == "Desktop session token is invalid.")
            }
            let unknown = RelayDesktop(baseURL: relay.baseURL)
            #expect(try await unknown.listDevices().errorCode == "session_not_found")
            #expect(try await unknown.refreshJoinToken().errorCode == "session_not_found")
            #expect(try await desktop.revokeDevice(opaque(16)).errorCode == "device_not_found")
            #expect(try await desktop.revokeDevice("short").errorCode == "invalid_device_revoke")
            let badList = try await relay.post("/devices/list", ["sessionID": "x", "desktopSessionToken": "y"])
            #expect(badList.errorMessage == "sessionID and desktopSessionToken are required.")
            #expect(badList.errorCode == "invalid_devices_list")
            let badStop = try await relay.post("/pair/stop", ["sessionID": "x", "desktopSessionToken": "y"])
            #expect(badStop.errorCode == "invalid_pair_stop")
            let badRefresh = try await relay.post("/pair/refresh", [
                "sessionID": "x", "desktopSessionToken": "y", "joinToken": "z", "joinTokenExpiresAt": .string(futureTimestamp()),
            ])
            #expect(badRefresh.errorCode == "invalid_pair_refresh")
            #expect(badRefresh.errorMessage == "sessionID, joinToken, and desktopSessionToken are required.")
        }
    }

    @Test func pairStopIsIdempotentAndInvalidatesJoin() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            let stop = try await desktop.stop(schemaVersion: 2)
            #expect(stop.status == 200)
            #expect(try stop.json()["sessionID"]?.stringValue == desktop.sessionID)
            #expect(try await desktop.stop().status == 200)
            let join = try await RelayPhone(baseURL: relay.baseURL).join(sessionID: desktop.sessionID, joinToken: desktop.joinToken)
            #expect(join.status == 404)
        }
    }

    @Test func devicesListAndRevokeRemoveTrustedDevice() async throws {
        try await withRelay { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL, deviceName: "  Bikram iPhone  ")
            let evil = RelayDesktop(
                baseURL: relay.baseURL, sessionID: paired.desktop.sessionID,
                desktopSessionToken: paired.desktop.desktopSessionToken, origin: "https://evil.example")
            #expect(try await evil.listDevices().errorCode == "origin_not_allowed")
            #expect(try await evil.revokeDevice(paired.phone.deviceID!).errorCode == "origin_not_allowed")

            let list = try await paired.desktop.listDevices().json()
            let devices = try #require(list["devices"]?.arrayValue)
            #expect(devices.count == 1)
            #expect(devices.first?["deviceID"]?.stringValue == paired.phone.deviceID)
            #expect(devices.first?["deviceName"]?.stringValue == "Bikram iPhone")
            #expect(devices.first?["connected"]?.boolValue == true)

            let revoke = try await paired.desktop.revokeDevice(paired.phone.deviceID!)
            #expect(revoke.status == 200)
            #expect(try revoke.json()["deviceID"]?.stringValue == paired.phone.deviceID)
            let (texts, code) = try await paired.phone.socket.readUntilClosed()
            #expect(texts.contains(#"{"reason":"device_revoked","type":"disconnect"}"#))
            #expect(code == 1008)
            let count = try await paired.desktop.socket.nextFrame()
            #expect(count["type"]?.stringValue == "relay.device_count")
            #expect(count["connectedDeviceCount"]?.intValue == 0)
            #expect(try await paired.desktop.listDevices().json()["devices"]?.arrayValue?.isEmpty == true)

            let reauth = RelayPhone(
                baseURL: relay.baseURL, sessionID: paired.phone.sessionID, deviceSessionToken: paired.phone.deviceSessionToken,
                wsURL: relay.wsURL)
            let socket = try await reauth.openSocket()
            try await socket.sendText(#"{"type":"relay.auth","token":"\#(paired.phone.deviceSessionToken!)"}"#)
            #expect(try await socket.nextFrame()["reason"]?.stringValue == "session_expired")
        }
    }

    @Test func deviceNameIsTrimmedTruncatedAndDefaulted() async throws {
        try await withRelay { relay in
            let long = String(repeating: "é", count: 80)
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL, deviceName: long)
            #expect(paired.pairRequest.deviceName == String(repeating: "é", count: 64))
            let unnamed = try await RelayPairing.pairConnected(baseURL: relay.baseURL, deviceName: "   ")
            #expect(unnamed.pairRequest.frame["deviceName"] == nil)
            let devices = try await unnamed.desktop.listDevices().json()["devices"]?.arrayValue
            #expect(devices?.first?["deviceName"]?.stringValue == "Mobile Device")
        }
    }

    @Test func trustProxyTakesTheRightmostForwardedEntry() async throws {
        try await withRelay({ $0["TRUST_PROXY"] = "true" }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            async let join = relay.post(
                "/pair/join", ["sessionID": .string(desktop.sessionID), "joinToken": .string(desktop.joinToken)],
                headers: [("Origin", allowedOrigin), ("X-Forwarded-For", "6.6.6.6, 203.0.113.9")])
            let request = try await desktop.nextPairRequest()
            #expect(request.frame["requesterIP"]?.stringValue == "203.0.113.9")
            try await desktop.decide(requestID: request.requestID, approved: false)
            _ = try await join
            await desktop.disconnect()
        }
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            async let join = relay.post(
                "/pair/join", ["sessionID": .string(desktop.sessionID), "joinToken": .string(desktop.joinToken)],
                headers: [("X-Forwarded-For", "203.0.113.9")])
            let request = try await desktop.nextPairRequest()
            #expect(request.frame["requesterIP"]?.stringValue == "127.0.0.1")
            try await desktop.decide(requestID: request.requestID, approved: false)
            _ = try await join
            await desktop.disconnect()
        }
    }

    @Test func metricszReportsRuntimeCountersForConnectedDevices() async throws {
        try await withRelay({ $0["TOKEN_ROTATION_GRACE_MS"] = "0" }) { relay in
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let m = try await relay.metrics()
            #expect(m["ok"]?.boolValue == true)
            #expect(m["sessions"]?.intValue == 1)
            #expect(m["sessionsWithDesktop"]?.intValue == 1)
            #expect(m["sessionsWithMobile"]?.intValue == 1)
            #expect(m["activeWebSockets"]?.intValue == 2)
            #expect(m["deviceTokens"]?.intValue == 1)
            #expect(m["commandRateLimitBuckets"]?.intValue == 0)
            #expect(m["snapshotRateLimitBuckets"]?.intValue == 0)
            #expect(m["outboundSendFailures"]?.intValue == 0)
            #expect(m["slowConsumerDisconnects"]?.intValue == 0)
            #expect(m["pairStartRequests"]?.intValue == 1)
            #expect(m["pairStartSuccesses"]?.intValue == 1)
            #expect(m["pairStartFailures"]?.intValue == 0)
            #expect(m["pairJoinRequests"]?.intValue == 1)
            #expect(m["pairJoinSuccesses"]?.intValue == 1)
            #expect(m["pairJoinFailures"]?.intValue == 0)
            #expect(m["pairRefreshRequests"]?.intValue == 0)
            #expect(m["wsAuthAttempts"]?.intValue == 2)
            #expect(m["wsAuthSuccesses"]?.intValue == 2)
            #expect(m["wsAuthFailures"]?.intValue == 0)
            #expect(m["wsAuthFailureReasons"]?.objectValue?.isEmpty == true)
            _ = paired
        }
    }

    @Test func failedPairJoinsAreCountedByCode() async throws {
        // The metrics system is the test process's, shared with tests running at the same time:
        // counters are compared before and after, and may have grown by more than this test.
        try await withRelay { relay in
            let before = try await relay.http.get("/metricsz", headers: [("Accept", "text/plain")]).bodyText
            #expect(before.contains("relay_pair_join_failures_total{code=\"join_token_expired\"} "), "every code is exported before its first failure")
            // Well-formed, for a session that does not exist.
            let unknown = try await relay.http.postJSON(
                path: "/pair/join", body: ["sessionID": .string(RelayTokens.sessionID()), "joinToken": .string(RelayTokens.token())])
            let code = try #require(unknown.errorCode)
            #expect(unknown.status >= 400)
            let after = try await relay.http.get("/metricsz", headers: [("Accept", "text/plain")]).bodyText
            let series = "relay_pair_join_failures_total{code=\"\(code)\"}"
            #expect(prometheusSampleValue(after, series) >= prometheusSampleValue(before, series) + 1, "\(series) did not grow")
        }
    }

    @Test func metricszServesPrometheusTextToAScrape() async throws {
        try await withRelay { relay in
            _ = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            let scrape = try await relay.http.get("/metricsz", headers: [("Accept", "text/plain;version=0.0.4")])
            #expect(scrape.status == 200)
            #expect(scrape.header("content-type")?.hasPrefix("text/plain") == true)
            let text = scrape.bodyText
            for name in [
                "relay_active_websockets ", "relay_active_websockets_limit ", "relay_ws_auth_attempts_total",
                "relay_ws_auth_successes_total", "relay_pair_requests_total{operation=\"start\"}",
                "relay_http_request_duration_seconds_bucket", "relay_ready 1", "relay_draining 0",
            ] {
                #expect(text.contains(name), "missing \(name)")
            }
            #expect(!text.contains("summary"))
            let json = try await relay.http.get("/metricsz", headers: [("Accept", "*/*")])
            #expect(json.header("content-type") == "application/json")
        }
    }
}

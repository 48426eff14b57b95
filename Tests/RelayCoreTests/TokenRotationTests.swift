import RelayCore
import RelayProtocol
import RelayTestSupport
import Testing

/// PROTOCOL §4.4: every mobile auth rotates the device token; the previous one stays usable for
/// `TOKEN_ROTATION_GRACE_MS`, or not at all when the grace is 0.
@Suite("Token rotation", .timeLimit(.minutes(2)))
struct TokenRotationTests {
    @Test func mobileAuthHandsOutANewTokenInAuthOK() async throws {
        let node = RelayNode()
        let (session, desktop, device) = try await node.pairedSession()
        let phone = try await node.connectMobile(token: device.token)

        let authOK = try #require(phone.connection.frames.first)
        #expect(authOK["type"] == "auth_ok")
        #expect(authOK["role"] == "mobile")
        #expect(authOK["sessionID"]?.stringValue == session.sessionID)
        #expect(authOK["deviceID"]?.stringValue == device.deviceID)
        #expect(authOK["desktopConnected"] == true)
        #expect(phone.nextToken != device.token)
        #expect(phone.nextToken.count == 43)
        #expect(Identifiers.isOpaqueToken(phone.nextToken, minLength: 22))
        // The desktop hears about the phone.
        let count = try #require(await desktop.connection.waitForFrame(ofType: "relay.device_count"))
        #expect(count["connectedDeviceCount"] == 1)
    }

    @Test func previousTokenStillAuthenticatesDuringGrace() async throws {
        let node = RelayNode { $0.tokenRotationGraceMillis = 30_000 }
        let (_, _, device) = try await node.pairedSession()
        #expect(node.relay.snapshot().deviceTokens == 1)

        let first = try await node.connectMobile(token: device.token)
        #expect(node.relay.snapshot().deviceTokens == 2)

        // The grace token works and rotates again; the socket it replaces is told why.
        let second = try await node.connectMobile(token: device.token)
        #expect(first.connection.terminations == [.deviceReconnected])
        #expect(second.nextToken != first.nextToken)
        #expect(node.relay.snapshot().deviceTokens == 3)

        // The token that was current until the second auth is in grace too.
        let third = try await node.connectMobile(token: first.nextToken)
        #expect(second.connection.terminations == [.deviceReconnected])
        #expect(third.nextToken != second.nextToken)
    }

    @Test func graceTokenStopsWorkingWhenTheGraceEnds() async throws {
        let clock = ManualClock()
        let node = RelayNode(clock: clock) { $0.tokenRotationGraceMillis = 120 }
        let (_, _, device) = try await node.pairedSession()
        let phone = try await node.connectMobile(token: device.token)

        clock.advance(byMillis: 120)
        #expect(rejection(await node.authenticate(token: device.token).1) == .tokenNotFound)
        _ = try await node.connectMobile(token: phone.nextToken)
    }

    @Test func zeroGraceRemovesThePreviousTokenAtOnce() async throws {
        let node = RelayNode { $0.tokenRotationGraceMillis = 0 }
        let (_, _, device) = try await node.pairedSession()
        let phone = try await node.connectMobile(token: device.token)

        #expect(node.relay.snapshot().deviceTokens == 1)
        #expect(rejection(await node.authenticate(token: device.token).1) == .tokenNotFound)
        let again = try await node.connectMobile(token: phone.nextToken)
        #expect(node.relay.snapshot().deviceTokens == 1)
        #expect(phone.connection.terminations == [.deviceReconnected])
        #expect(again.nextToken != phone.nextToken)
    }

    @Test func desktopTokenNeverRotates() async throws {
        let node = RelayNode()
        let session = try await node.startSession()
        let first = try await node.connectDesktop(session)
        let authOK = try #require(first.connection.frames.first)
        #expect(authOK["type"] == "auth_ok")
        #expect(authOK["role"] == "desktop")
        #expect(authOK["nextDeviceSessionToken"] == nil)

        _ = try await node.connectDesktop(session)
        #expect(first.connection.terminations == [.desktopReconnected])
    }

    @Test func phoneFromADisallowedOriginIsRefusedWithoutRotating() async throws {
        let node = RelayNode()
        let (_, _, device) = try await node.pairedSession()
        #expect(rejection(await node.authenticate(token: device.token, origin: "https://evil.example").1) == .mobileOriginNotAllowed)
        #expect(rejection(await node.authenticate(token: device.token, origin: nil).1) == .mobileOriginNotAllowed)
        #expect(node.relay.snapshot().deviceTokens == 1)
        _ = try await node.connectMobile(token: device.token)
    }
}

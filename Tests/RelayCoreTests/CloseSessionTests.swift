import RelayCore
import RelayProtocol
import RelayTestSupport
import Testing

/// PROTOCOL §5 "Closing a session" and §10.2 `close_session_removes_all_device_tokens_for_closed_session`.
@Suite("Closing sessions", .timeLimit(.minutes(2)))
struct CloseSessionTests {
    @Test func closeSessionRemovesAllDeviceTokensForClosedSessionOnly() async throws {
        let node = RelayNode { $0.tokenRotationGraceMillis = 30_000 }
        let (closing, closingDesktop, closingDevice) = try await node.pairedSession()
        let closingPhone = try await node.connectMobile(token: closingDevice.token)  // current + grace token
        let (kept, keptDesktop, keptDevice) = try await node.pairedSession()
        #expect(node.relay.snapshot().deviceTokens == 3)

        try await node.stop(closing)

        #expect(node.relay.snapshot().sessions == 1)
        #expect(node.relay.snapshot().deviceTokens == 1)
        for token in [closingDevice.token, closingPhone.nextToken] {
            #expect(rejection(await node.authenticate(token: token).1) == .tokenNotFound)
        }
        #expect(rejection(await node.authenticate(token: closing.desktopToken, origin: nil).1) == .tokenNotFound)
        #expect(closingDesktop.connection.terminations == [.stoppedByDesktop])
        #expect(closingPhone.connection.terminations == [.stoppedByDesktop])

        #expect(keptDesktop.connection.terminations.isEmpty)
        _ = try await node.connectMobile(token: keptDevice.token)
        _ = try await node.connectDesktop(kept)
    }

    @Test func closingASessionFailsItsPendingJoin() async throws {
        let node = RelayNode()
        let session = try await node.startSession()
        let desktop = try await node.connectDesktop(session)
        let request = try PairJoinRequest(json: [
            "sessionID": .string(session.sessionID), "joinToken": .string(session.joinToken),
        ])
        async let joined = node.relay.pairJoin(request, meta: fixtureMeta)
        _ = try #require(await desktop.connection.waitForFrame(ofType: "relay.pair_request"))

        try await node.stop(session)

        do {
            _ = try await joined
            Issue.record("the join succeeded although its session was stopped")
        } catch {
            #expect(error as? APIError == .desktopDisconnectedDuringApproval)
        }
        #expect(node.relay.snapshot().pendingJoinWaiters == 0)
    }

    @Test func replacingASessionRemovesTheOldTokens() async throws {
        let node = RelayNode()
        let (session, desktop, device) = try await node.pairedSession()
        #expect(node.relay.snapshot().deviceTokens == 1)

        // Same id and desktop token: a replacement, not a conflict.
        var replacement = session
        replacement.joinToken = Identifiers.random(bytes: 32)
        try await node.startSession(replacement)

        #expect(desktop.connection.terminations == [.replacedByNewPairStart])
        #expect(node.relay.snapshot().sessions == 1)
        #expect(node.relay.snapshot().deviceTokens == 0)
        #expect(rejection(await node.authenticate(token: device.token).1) == .tokenNotFound)
        _ = try await node.connectDesktop(replacement)
    }
}

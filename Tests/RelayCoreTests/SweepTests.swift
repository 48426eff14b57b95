import RelayCore
import RelayProtocol
import RelayTestSupport
import Testing

/// PROTOCOL §5 and DECISIONS 5: which sessions a sweep expires. Sweeps run with a future `now`
/// instead of waiting; creation and activity times are bracketed by wall-clock readings.
@Suite("Sweeper", .timeLimit(.minutes(2)))
struct SweepTests {
    @Test func unpairedSessionWithoutSocketsExpiresAfterRetention() async throws {
        let store = InMemoryStateStore()
        let node = RelayNode(store: store) { $0.sessionRetentionMillis = 1_000 }
        let before = wallClockMillis()
        let session = try await node.startSession()
        let after = wallClockMillis()

        await node.relay.sweep(now: before + 999)
        #expect(node.relay.snapshot().sessions == 1)

        await node.relay.sweep(now: after + 1_000)
        #expect(node.relay.snapshot().sessions == 0)
        #expect(try await store.load(sessionID: session.sessionID).record == nil)
        let (_, outcome) = await node.authenticate(token: session.desktopToken, origin: nil)
        #expect(rejection(outcome) == .tokenNotFound)
    }

    @Test(arguments: [(1, 60), (60, 60), (120, 120)] as [(UInt64, Int64)])
    func idleSessionExpiresAfterItsIdleTimeoutOfAtLeastSixtySeconds(requested: UInt64, effectiveSeconds: Int64) async throws {
        let node = RelayNode()  // retention stays at 600 s, longer than any idle timeout here
        let before = wallClockMillis()
        try await node.startSession(idleTimeoutSeconds: requested)
        let after = wallClockMillis()

        await node.relay.sweep(now: before + effectiveSeconds * 1_000 - 1)
        #expect(node.relay.snapshot().sessions == 1)

        await node.relay.sweep(now: after + effectiveSeconds * 1_000)
        #expect(node.relay.snapshot().sessions == 0)
    }

    @Test func sessionWithTrustedDeviceSurvivesRetentionAndIdleButNotTheTrustedSessionTTL() async throws {
        let ttl: Int64 = 3_600_000
        let node = RelayNode {
            $0.sessionRetentionMillis = 1_000
            $0.trustedSessionTTLMillis = ttl
        }
        let (session, desktop, device) = try await node.pairedSession(idleTimeoutSeconds: 60)
        let beforeClose = wallClockMillis()
        desktop.endpoint.closed()  // the desktop goes offline: no socket left, one trusted device
        let afterClose = wallClockMillis()

        // Far past retention (1 s) and idle (60 s), still within the trusted-session TTL.
        await node.relay.sweep(now: beforeClose + ttl - 1)
        #expect(node.relay.snapshot().sessions == 1)
        #expect(node.relay.snapshot().deviceTokens == 1)

        await node.relay.sweep(now: afterClose + ttl)
        #expect(node.relay.snapshot().sessions == 0)
        #expect(node.relay.snapshot().deviceTokens == 0)
        let (_, outcome) = await node.authenticate(token: device.token)
        #expect(rejection(outcome) == .tokenNotFound)
        #expect(rejection(await node.authenticate(token: session.desktopToken, origin: nil).1) == .tokenNotFound)
    }

    @Test func sessionWithLocalDesktopIsNeverSwept() async throws {
        let node = RelayNode { $0.sessionRetentionMillis = 1 }
        let session = try await node.startSession(idleTimeoutSeconds: 60)
        let desktop = try await node.connectDesktop(session)

        await node.relay.sweep(now: wallClockMillis() + 400 * 24 * 3_600_000)
        #expect(node.relay.snapshot().sessions == 1)
        #expect(desktop.connection.terminations.isEmpty)
    }

    @Test func sessionWithOnlyALocalPhoneIsNeverSwept() async throws {
        let node = RelayNode {
            $0.sessionRetentionMillis = 1
            $0.trustedSessionTTLMillis = 1
        }
        let (_, desktop, device) = try await node.pairedSession(idleTimeoutSeconds: 60)
        let phone = try await node.connectMobile(token: device.token)
        desktop.endpoint.closed()

        await node.relay.sweep(now: wallClockMillis() + 400 * 24 * 3_600_000)
        #expect(node.relay.snapshot().sessions == 1)
        #expect(phone.connection.terminations.isEmpty)
    }

    @Test func sweepPrunesExpiredGraceTokensFromTheIndexAndTheStoredRecord() async throws {
        let grace: Int64 = 60_000
        let store = InMemoryStateStore()
        let node = RelayNode(store: store) { $0.tokenRotationGraceMillis = grace }
        let (session, _, device) = try await node.pairedSession()
        let beforeRotation = wallClockMillis()
        _ = try await node.connectMobile(token: device.token)
        let afterRotation = wallClockMillis()
        #expect(node.relay.snapshot().deviceTokens == 2)

        await node.relay.sweep(now: beforeRotation + grace - 1)
        #expect(node.relay.snapshot().deviceTokens == 2)

        await node.relay.sweep(now: afterRotation + grace)
        #expect(node.relay.snapshot().deviceTokens == 1)
        #expect(node.relay.snapshot().sessions == 1)
        let stored = try #require(try await store.load(sessionID: session.sessionID).record)
        #expect(stored.devices[device.deviceID]?.retiredTokens == [])
        // Still inside the real-clock grace period, but the sweep already removed the token.
        #expect(rejection(await node.authenticate(token: device.token).1) == .tokenNotFound)
    }

    @Test func clusterSweepForgetsOnlyTheLocalCopy() async throws {
        try await withCluster { cluster in
            let node = cluster.node { $0.sessionRetentionMillis = 1_000 }
            let observer = try await cluster.observer()
            let session = try await node.startSession()
            observer.bus.setSubscribed(true, sessionID: session.sessionID)

            await node.relay.sweep(now: wallClockMillis() + 1_000)
            #expect(node.relay.snapshot().sessions == 0)

            // DECISIONS 5: nothing is announced and the shared record stays for its TTL. The
            // in-process bus delivers in order, so a marker published after the sweep comes after
            // anything the sweep published.
            let marker = cluster.makeBus()
            marker.publish(BusEnvelope(
                sessionID: session.sessionID, sourceInstanceID: marker.instanceID, target: .desktop,
                payload: Array(#"{"type":"test.marker"}"#.utf8), issuedAtMillis: wallClockMillis(), nonce: Identifiers.shortID()))
            #expect(await observer.waitForEnvelopes(count: 1) { $0.sourceInstanceID == marker.instanceID } != nil)
            #expect(observer.envelopes.filter { $0.target.isSessionTraffic && $0.sourceInstanceID != marker.instanceID }.isEmpty)
            #expect(try await cluster.store.load(sessionID: session.sessionID).record != nil)
        }
    }

    @Test func sweepDoesNotExpireASessionWhoseDesktopIsConnectedToAnotherNode() async throws {
        try await withCluster { cluster in
            let desktopNode = try await cluster.startedNode { $0.sessionRetentionMillis = 1_000 }
            let session = try await desktopNode.startSession()
            let desktop = try await desktopNode.connectDesktop(session)
            // A second node holds the session too (restored from the shared store), with no socket of it.
            let otherNode = try await cluster.startedNode { $0.sessionRetentionMillis = 1_000 }
            #expect(otherNode.relay.snapshot().sessions == 1)

            await otherNode.relay.sweep(now: wallClockMillis() + 1_000)

            // Anything the sweep published reaches the desktop's node before this marker does.
            let marker = cluster.makeBus()
            marker.publish(BusEnvelope(
                sessionID: session.sessionID, sourceInstanceID: marker.instanceID, target: .desktop,
                payload: Array(#"{"type":"test.marker"}"#.utf8), issuedAtMillis: wallClockMillis(), nonce: Identifiers.shortID()))
            #expect(await desktop.connection.waitForFrame(ofType: "test.marker") != nil)

            #expect(desktop.connection.terminations.isEmpty)
            #expect(!desktop.connection.frames.contains { $0["type"] == "disconnect" })
            #expect(desktopNode.relay.snapshot().sessions == 1)
            #expect(try await cluster.store.load(sessionID: session.sessionID).record != nil)
        }
    }
}

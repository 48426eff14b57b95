import RelayCore
import RelayProtocol
import RelayTestSupport
import Testing

/// Sessions restored from the store keep being persisted: a restart must not lose what changes
/// afterwards (DECISIONS 3 "No node writes a stale copy back over a newer record" — nor may a
/// newer change be dropped as if it were stale).
@Suite("Persistence across restarts", .timeLimit(.minutes(2)))
struct PersistenceTests {
    @Test func restoredSessionIsRestoredWithItsDevicesAndTokens() async throws {
        let store = InMemoryStateStore()
        let (session, _, device) = try await RelayNode(store: store).pairedSession()

        let restarted = RelayNode(store: store)
        try await restarted.relay.start()
        #expect(restarted.relay.snapshot().sessions == 1)
        #expect(restarted.relay.snapshot().deviceTokens == 1)
        _ = try await restarted.connectDesktop(session)
        _ = try await restarted.connectMobile(token: device.token)
    }

    @Test func tokenRotatedAfterARestartSurvivesTheNextRestart() async throws {
        let store = InMemoryStateStore()
        let (session, _, device) = try await RelayNode(store: store).pairedSession()

        let restarted = RelayNode(store: store)
        try await restarted.relay.start()
        let phone = try await restarted.connectMobile(token: device.token)

        let stored = try #require(try await store.load(sessionID: session.sessionID).record)
        #expect(stored.devices[device.deviceID]?.currentToken.matches(phone.nextToken) == true)

        let restartedAgain = RelayNode(store: store)
        try await restartedAgain.relay.start()
        let (_, outcome) = await restartedAgain.authenticate(token: phone.nextToken)
        #expect(rejection(outcome) == nil, "the token handed out after the first restart is refused: \(String(describing: rejection(outcome)))")
    }

    @Test func deviceJoinedThroughAnotherNodeIsStored() async throws {
        try await withCluster { cluster in
            let desktopNode = try await cluster.startedNode()
            let session = try await desktopNode.startSession()
            let desktop = try await desktopNode.connectDesktop(session)
            let joinNode = try await cluster.startedNode()

            let device = try await joinNode.pairDevice(session, approvedBy: desktop)

            let stored = try #require(try await cluster.store.load(sessionID: session.sessionID).record)
            #expect(stored.devices[device.deviceID] != nil)
            #expect(stored.joinTokenUsedAtMillis != nil)
        }
    }
}

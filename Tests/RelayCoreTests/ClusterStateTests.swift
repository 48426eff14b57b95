import RelayTestSupport
import Testing
import RelayProtocol
@testable import RelayCore

/// DECISIONS 3 and 4 on nodes that share one store and one bus: every node sees the cluster's
/// current session state, and one-time means one-time.
@Suite("Cluster state", .timeLimit(.minutes(2)))
struct ClusterStateTests {
    @Test func tokenRotatedOnOneNodeIsAcceptedOnANodeThatHoldsTheSessionsSockets() async throws {
        try await withCluster { cluster in
            let desktopNode = try await cluster.startedNode()
            let phoneNode = try await cluster.startedNode()
            let session = try await desktopNode.startSession()
            let desktop = try await desktopNode.connectDesktop(session)
            let device = try await phoneNode.pairDevice(session, approvedBy: desktop)

            // Rotated on the phone's node; then the phone moves to the node holding the desktop.
            let first = try await phoneNode.connectMobile(token: device.token)
            let second = try await desktopNode.connectMobile(token: first.nextToken)
            #expect(second.nextToken != first.nextToken)
            let stored = try #require(try await cluster.store.load(sessionID: session.sessionID).record)
            #expect(stored.devices[device.deviceID]?.currentToken.matches(second.nextToken) == true)
            _ = desktop
        }
    }

    @Test func revocationClosesThePhoneOnAnotherNodeAndTheTokenFailsEverywhere() async throws {
        try await withCluster { cluster in
            let a = try await cluster.startedNode()
            let b = try await cluster.startedNode()
            let c = try await cluster.startedNode()
            let session = try await a.startSession()
            let desktop = try await a.connectDesktop(session)
            let device = try await b.pairDevice(session, approvedBy: desktop)
            let phone = try await c.connectMobile(token: device.token)

            _ = try await a.relay.devicesRevoke(DeviceRevokeRequest(json: [
                "schemaVersion": 2, "sessionID": .string(session.sessionID),
                "desktopSessionToken": .string(session.desktopToken), "deviceID": .string(device.deviceID),
            ]), meta: fixtureMeta)

            #expect(await phone.connection.waitForTermination(timeout: .seconds(1)))
            #expect(phone.connection.terminations == [.deviceRevoked])
            for node in [a, b, c] {
                let (_, outcome) = await node.authenticate(token: phone.nextToken)
                #expect(rejection(outcome) != nil)
            }
        }
    }

    @Test func oneJoinTokenRedeemedConcurrentlyOnTwoNodesSucceedsExactlyOnce() async throws {
        try await withCluster { cluster in
            let desktopNode = try await cluster.startedNode()
            let b = try await cluster.startedNode()
            let c = try await cluster.startedNode()
            let session = try await desktopNode.startSession()
            let desktop = try await desktopNode.connectDesktop(session)
            let request = try PairJoinRequest(json: [
                "sessionID": .string(session.sessionID), "joinToken": .string(session.joinToken),
            ])
            async let first = joinOutcome(b, request)
            async let second = joinOutcome(c, request)

            // The desktop approves both requests it is shown.
            let requests = try #require(await desktop.connection.waitForFrame(ofType: "relay.pair_request", count: 2))
            _ = requests
            for pairRequest in desktop.connection.frames(ofType: "relay.pair_request") {
                let decision: JSONValue = [
                    "type": "relay.pair_decision", "sessionID": .string(session.sessionID),
                    "requestID": .string(try #require(pairRequest["requestID"]?.stringValue)), "approved": true,
                ]
                desktop.endpoint.receive(text: Array(decision.serialized.utf8))
            }
            let outcomes = await [first, second]
            let successes = outcomes.filter { if case .success = $0 { true } else { false } }
            let failures = outcomes.compactMap { if case .failure(let error) = $0 { error } else { nil } }
            #expect(successes.count == 1)
            #expect(failures.map(\.code) == [.joinTokenAlreadyUsed])
            let stored = try #require(try await cluster.store.load(sessionID: session.sessionID).record)
            #expect(stored.devices.count == 1)
        }
    }

    @Test func stopThroughANodeWithoutSocketsEndsTheSessionEverywhere() async throws {
        try await withCluster { cluster in
            let a = try await cluster.startedNode()
            let b = try await cluster.startedNode()
            let session = try await a.startSession()
            let desktop = try await a.connectDesktop(session)

            try await b.stop(session)

            #expect(await desktop.connection.waitForTermination(timeout: .seconds(1)))
            #expect(desktop.connection.terminations.first == .stoppedByDesktop)
            for node in [a, b] {
                let (_, outcome) = await node.authenticate(token: session.desktopToken, origin: nil)
                #expect(rejection(outcome) != nil)
            }
            #expect(try await cluster.store.load(sessionID: session.sessionID).record == nil)
        }
    }

    @Test func pairStartConflictIsCheckedAgainstTheStoreNotTheLocalCopy() async throws {
        try await withCluster { cluster in
            let a = try await cluster.startedNode()
            let session = try await a.startSession()
            let desktop = try await a.connectDesktop(session)
            _ = try await a.pairDevice(session, approvedBy: desktop)
            let b = try await cluster.startedNode()

            // Same sessionID, another desktop token, on a node that may not hold a copy yet.
            let intruder = TestSession(sessionID: session.sessionID)
            let refused = await #expect(throws: APIError.self) { try await b.startSession(intruder) }
            #expect(refused?.code == .sessionAlreadyActive)
            let stored = try #require(try await cluster.store.load(sessionID: session.sessionID).record)
            #expect(stored.desktopSessionToken.matches(session.desktopToken))
        }
    }

    @Test func aNewDeviceIsKnownOnEveryNodeWithoutAReconnect() async throws {
        try await withCluster { cluster in
            let a = try await cluster.startedNode()
            let b = try await cluster.startedNode()
            let session = try await a.startSession()
            let desktop = try await a.connectDesktop(session)
            let device = try await a.pairDevice(session, approvedBy: desktop)
            // The session refresh has reached b: the token is in its index before any miss.
            let indexed = await eventually { b.relay.directory.registry.owner(ofToken: TokenDigest(of: device.token), now: wallClockMillis()) }
            #expect(indexed != nil)
        }
    }
}

/// `/pair/join` on `node`, as a result rather than a throw.
private func joinOutcome(_ node: RelayNode, _ request: PairJoinRequest) async -> Result<[UInt8], APIError> {
    do {
        return .success(try await node.relay.pairJoin(request, meta: fixtureMeta))
    } catch {
        return .failure(error)
    }
}

import RelayCore
import RelayProtocol
import RelayTestSupport
import Testing

/// The in-process cluster bus: in-order delivery between nodes, never back to the sender,
/// session traffic only to subscribed nodes (PROTOCOL §6.3).
@Suite("In-process cluster bus", .timeLimit(.minutes(2)))
struct InProcessClusterBusTests {
    static let sessionID = "bus-session-0123456789"

    @Test func envelopesArriveAtAnotherNodeInPublishOrder() async throws {
        try await withCluster { cluster in
            let sender = cluster.makeBus()
            let receiver = try await cluster.observer()
            receiver.bus.setSubscribed(true, sessionID: Self.sessionID)
            #expect(receiver.bus.subscriptionCount == 1)

            for n in 0..<200 { sender.publish(envelope(from: sender, sessionID: Self.sessionID, target: .mobile, n: n)) }

            let received = try #require(await receiver.waitForEnvelopes(count: 200))
            #expect(received.compactMap { sequenceNumber($0.payload) } == Array(0..<200))
            #expect(received.allSatisfy { $0.sourceInstanceID == sender.instanceID })
        }
    }

    @Test func aNodeNeverReceivesItsOwnEnvelopes() async throws {
        try await withCluster { cluster in
            let first = try await cluster.observer()
            let second = try await cluster.observer()
            for observer in [first, second] { observer.bus.setSubscribed(true, sessionID: Self.sessionID) }

            first.bus.publish(envelope(from: first.bus, sessionID: Self.sessionID, target: .mobile, n: 1))
            first.bus.publish(envelope(from: first.bus, sessionID: Self.sessionID, target: .pairDecision, n: 2))
            // Delivery to one node is in order, so once `first` has the marker published after its
            // own envelopes, anything routed back to it would already be there.
            second.bus.publish(envelope(from: second.bus, sessionID: Self.sessionID, target: .mobile, n: 3))

            #expect(try #require(await second.waitForEnvelopes(count: 2)).compactMap { sequenceNumber($0.payload) } == [1, 2])
            #expect(try #require(await first.waitForEnvelopes(count: 1)).compactMap { sequenceNumber($0.payload) } == [3])
            #expect(first.envelopes.count == 1)
        }
    }

    @Test func sessionTrafficReachesOnlySubscribedNodesWhileControlTrafficReachesAll() async throws {
        try await withCluster { cluster in
            let sender = cluster.makeBus()
            let unsubscribed = try await cluster.observer()

            for (n, target) in BusTarget.allCases.enumerated() {
                sender.publish(envelope(from: sender, sessionID: Self.sessionID, target: target, n: n))
            }
            let controlCount = BusTarget.allCases.filter { !$0.isSessionTraffic }.count
            let received = try #require(await unsubscribed.waitForEnvelopes(count: controlCount))
            #expect(received.map(\.target) == BusTarget.allCases.filter { !$0.isSessionTraffic })

            unsubscribed.bus.setSubscribed(true, sessionID: Self.sessionID)
            sender.publish(envelope(from: sender, sessionID: Self.sessionID, target: .desktop, n: 99))
            let afterSubscribing = try #require(await unsubscribed.waitForEnvelopes(count: controlCount + 1))
            #expect(afterSubscribing.last?.target == .desktop)

            unsubscribed.bus.setSubscribed(false, sessionID: Self.sessionID)
            #expect(unsubscribed.bus.subscriptionCount == 0)
        }
    }

    @Test func sessionTargetsAreSplitBetweenSessionAndControlSubjects() {
        #expect(BusTarget.desktop.isSessionTraffic)
        #expect(BusTarget.mobile.isSessionTraffic)
        for target in [BusTarget.pairDecision, .sessionRefresh, .desktopStatusProbe, .desktopStatusResponse] {
            #expect(!target.isSessionTraffic)
        }
        #expect(BusTarget.pairDecision.rawValue == "pair_decision")
    }
}

/// Two `Relay` nodes in one process joined by the in-process bus: traffic crosses nodes.
@Suite("Relay across nodes", .timeLimit(.minutes(2)))
struct RelayAcrossNodesTests {
    @Test func desktopFramesReachAPhoneOnAnotherNodeInOrderAndLocalPhonesOnce() async throws {
        try await withCluster { cluster in
            let desktopNode = try await cluster.startedNode()
            var (session, desktop, localDevice) = try await desktopNode.pairedSession()
            try await desktopNode.refreshJoinToken(&session)
            let remoteDevice = try await desktopNode.pairDevice(session, approvedBy: desktop)
            let localPhone = try await desktopNode.connectMobile(token: localDevice.token)

            let phoneNode = try await cluster.startedNode()  // restores the session from the shared store
            let remotePhone = try await phoneNode.connectMobile(token: remoteDevice.token)
            #expect(remotePhone.connection.frames.first?["desktopConnected"] == true)

            let count = 50
            for n in 0..<count { desktop.endpoint.receive(text: Array(#"{"type":"test.frame","n":\#(n)}"#.utf8)) }

            _ = try #require(await remotePhone.connection.waitForFrame(ofType: "test.frame", count: count))
            #expect(remotePhone.connection.frames(ofType: "test.frame").compactMap(\.frameNumber) == Array(0..<count))

            // The remote phone leaving is announced to the desktop's node after the frames above;
            // once it arrives there, an echo of the desktop node's own envelopes would have too.
            remotePhone.endpoint.closed()
            // The count is the cluster's: the desktop node's own phone is still connected.
            let one = await desktop.connection.waitForFrame(ofType: "relay.device_count", count: 3)
            #expect(one?["connectedDeviceCount"] == 1)
            #expect(localPhone.connection.frames(ofType: "test.frame").compactMap(\.frameNumber) == Array(0..<count))
        }
    }

    @Test func phoneJoiningThroughAnotherNodeIsApprovedByTheDesktopsNode() async throws {
        try await withCluster { cluster in
            let desktopNode = try await cluster.startedNode()
            let session = try await desktopNode.startSession()
            let desktop = try await desktopNode.connectDesktop(session)
            let joinNode = try await cluster.startedNode()

            let request = try PairJoinRequest(json: [
                "sessionID": .string(session.sessionID), "joinToken": .string(session.joinToken), "deviceName": "Far Phone",
            ])
            async let joined = joinNode.relay.pairJoin(request, meta: fixtureMeta)
            let pairRequest = try #require(await desktop.connection.waitForFrame(ofType: "relay.pair_request"))
            #expect(pairRequest["deviceName"] == "Far Phone")
            #expect(pairRequest["requesterIP"]?.stringValue == fixtureMeta.clientIP)
            let requestID = try #require(pairRequest["requestID"]?.stringValue)
            let decision: JSONValue = [
                "type": "relay.pair_decision", "sessionID": .string(session.sessionID),
                "requestID": .string(requestID), "approved": true,
            ]
            desktop.endpoint.receive(text: Array(decision.serialized.utf8))

            let body = try JSONValue.parse(try await joined)
            #expect(body["accepted"] == true)
            let token = try #require(body["deviceSessionToken"]?.stringValue)
            let result = try #require(await desktop.connection.waitForFrame(ofType: "relay.pair_result"))
            #expect(result["approved"] == true)
            let phone = try await joinNode.connectMobile(token: token)
            #expect(phone.connection.frames.first?["deviceID"] == body["deviceID"])
        }
    }
}

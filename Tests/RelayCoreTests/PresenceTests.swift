import RelayProtocol
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayCore

/// Presence as cluster state, inside one process: nodes on an in-process bus sharing one store.
@Suite("Presence", .timeLimit(.minutes(2)))
struct PresenceTests {
    @Test func aDesktopOnANodeThatNeverHeldALeaseIsNotDeclaredGone() async throws {
        try await withCluster { cluster in
            let a = try await cluster.startedNode()
            let b = try await cluster.startedNode()
            let (session, desktop, device) = try await a.pairedSession()
            let phone = try await b.connectMobile(token: device.token)
            #expect(phone.connection.frames.first?["desktopConnected"] == true)
            // The desktop leaves a; a reference relay in the cluster (no lease, no presence claims)
            // then says it holds the session's desktop.
            desktop.endpoint.closed()
            _ = await phone.connection.waitForFrame(ofType: "relay.desktop_status", count: 1)
            let reference = try await cluster.observer()
            reference.bus.publish(BusEnvelope(
                sessionID: session.sessionID, sourceInstanceID: "reference-node", target: .mobile,
                payload: ServerMessage.desktopStatus(sessionID: session.sessionID, desktopConnected: true),
                issuedAtMillis: wallClockMillis(), nonce: Identifiers.shortID()))
            let online = await phone.connection.waitForFrame(ofType: "relay.desktop_status", count: 2)
            #expect(online?["desktopConnected"] == true)

            // b's checks find no lease for that node, but it never had one: the desktop stays.
            await b.relay.lease.renewAndCheck()
            await b.relay.lease.renewAndCheck()
            #expect(b.relay.directory.session(session.sessionID)?.state.withLock { $0.remoteDesktopNode } == "reference-node")
            #expect(phone.connection.frames(ofType: "relay.desktop_status").count == 2)
            // While a node that held a lease and lost it is declared gone at the next check.
            b.relay.directory.session(session.sessionID)?.state.withLock { $0.remoteDesktopNode = "node-that-died" }
            b.relay.presence.noteLeaseHolders(["node-that-died"])
            await b.relay.lease.renewAndCheck()
            let offline = await phone.connection.waitForFrame(ofType: "relay.desktop_status", count: 3)
            #expect(offline?["desktopConnected"] == false)
        }
    }
}

/// After a failover the store's versions may be lower than what a node read from the old master.
@Suite("Store failover", .timeLimit(.minutes(2)))
struct StoreFailoverTests {
    @Test func aReplacedStoreWinsOverLocalCopiesWithHigherVersions() async throws {
        let store = InMemoryStateStore(shared: true)
        let node = RelayNode(store: store)
        let (session, _, device) = try await node.pairedSession()
        let local = try #require(node.relay.directory.session(session.sessionID))
        let seen = try await store.load(sessionID: session.sessionID)
        // The promoted replica never got the pairing: the session as it was before, at a lower version.
        var older = try #require(seen.record)
        older.devices = [:]
        #expect(try await store.compareAndSave(older, version: 1, expected: seen.version))
        try await node.relay.directory.reloadSession(session.sessionID)
        #expect(local.state.withLock { $0.record.devices[device.deviceID] } != nil, "a lower version is not adopted")

        node.relay.storeWasReplaced()
        let followed = await eventually(timeout: .seconds(30)) { () -> Bool? in
            local.state.withLock { $0.record.devices.isEmpty && $0.version == 1 } ? true : nil
        }
        #expect(followed == true)
    }
}

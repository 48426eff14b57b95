import RelayProtocol
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayCore

/// A frame whose every recipient is on this node stays on this node: nothing signed or published.
@Suite("Local delivery", .timeLimit(.minutes(2)))
struct LocalDeliveryTests {
    static func command(_ sessionID: String, seq: Int) -> [UInt8] {
        Array(#"{"schemaVersion":2,"sessionID":"\#(sessionID)","seq":\#(seq),"payload":{"type":"command","payload":{"name":"thread.select","commandID":"c\#(seq)","threadID":"t1"}}}"#.utf8)
    }

    static func event(_ sessionID: String, seq: Int) -> [UInt8] {
        Array(#"{"schemaVersion":2,"sessionID":"\#(sessionID)","seq":\#(seq),"timestamp":"2026-12-07T00:00:00.000Z","payload":{"type":"event","n":\#(seq)}}"#.utf8)
    }

    @Test func aCommandWhoseDesktopIsHereIsNotPublishedUntilANewerDesktopIsAnnouncedElsewhere() async throws {
        try await withCluster { cluster in
            let node = try await cluster.startedNode()
            let (session, desktop, device) = try await node.pairedSession()
            let phone = try await node.connectMobile(token: device.token)
            let observer = try await cluster.observer()
            observer.bus.setSubscribed(true, sessionID: session.sessionID)
            let sid = session.sessionID

            phone.endpoint.receive(text: Self.command(sid, seq: 1))
            #expect(await desktop.connection.waitForFrame(ofType: nil, containing: "\"commandID\":\"c1\"") != nil)
            // The desktop's event is published (the node cannot know that no phone is elsewhere);
            // the node's envelopes arrive in order, so a published command would be there first.
            desktop.endpoint.receive(text: Self.event(sid, seq: 1))
            let first = try #require(await observer.waitForEnvelopes(count: 1) { $0.target == .mobile })
            #expect(first.count == 1)
            #expect(!observer.envelopes.contains { $0.target == .desktop && String(decoding: $0.payload, as: UTF8.self).contains("\"c1\"") })

            // Another node says it now holds the session's desktop: commands go there too.
            observer.bus.publish(BusEnvelope(
                sessionID: sid, sourceInstanceID: observer.bus.instanceID, target: .mobile,
                payload: ServerMessage.desktopStatus(sessionID: sid, desktopConnected: true),
                issuedAtMillis: wallClockMillis(), nonce: Identifiers.shortID()))
            let remote = await eventually { node.relay.directory.session(sid)?.state.withLock { $0.remoteDesktopNode } }
            #expect(remote == observer.bus.instanceID)
            phone.endpoint.receive(text: Self.command(sid, seq: 2))
            let published = try #require(await observer.waitForEnvelopes(count: 1) {
                $0.target == .desktop && String(decoding: $0.payload, as: UTF8.self).contains("\"c2\"")
            })
            #expect(published.count == 1)
        }
    }
}

extension RecordingConnection {
    /// Waits until a frame whose text contains `fragment` has arrived (any type when `type` is nil).
    func waitForFrame(ofType type: String?, containing fragment: String, timeout: Duration = .seconds(30)) async -> String? {
        await eventually(timeout: timeout) {
            self.texts.first { $0.contains(fragment) && (type == nil || $0.contains("\"type\":\"\(type!)\"")) }
        }
    }
}

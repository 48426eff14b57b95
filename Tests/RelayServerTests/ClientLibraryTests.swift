import Foundation
import RelayLocalCluster
import RelayTestClient
import RelayTestSupport
import Testing

/// The client library (RelayPhoneClient, RelayDesktopClient) against real relays: pairing from a
/// join link, credentials across rotations and restarts, reconnecting after a killed or drained
/// node, stopping for good after the reasons that end a session, and snapshots after a gap.
@Suite("Client library", .timeLimit(.minutes(3)))
struct ClientLibraryTests {
    /// Waits for a phone event `match` accepts.
    static func phoneEvent(_ pair: LibraryPair, from start: Int = 0, _ match: @escaping (RelayPhoneEvent) -> Bool) async throws {
        try await pair.phoneEvents.first(from: start) { match($0) ? true : nil }
    }

    /// The next `relay.snapshot_request` a frame-level desktop reads, skipping pairing results and
    /// device counts.
    static func nextSnapshotRequest(_ socket: RelayWebSocket) async throws -> JSONValue {
        while true {
            let frame = try await socket.nextJSON(timeout: .seconds(10))
            if frame.type == "relay.snapshot_request" { return frame }
            guard ["relay.device_count", "relay.pair_result"].contains(frame.type ?? "") else {
                throw TestFailure("expected a snapshot request, got \(frame)")
            }
        }
    }

    static func isConnected(_ event: RelayPhoneEvent) -> Bool { if case .connected = event { true } else { false } }

    static func disconnection(_ event: RelayPhoneEvent) -> RelayDisconnection? {
        if case .disconnected(let disconnection) = event { disconnection } else { nil }
    }

    @Test func everyRotationReachesTheAppAndAPhoneRestartedFromStoredCredentialsCarriesOn() async throws {
        try await withRelay { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin)
            // The join's credentials, then the first connection's rotation: each stored, each new.
            let stored = pair.storedCredentials.all
            #expect(stored.count == 2)
            #expect(Set(stored.map(\.deviceSessionToken)).count == 2)
            #expect(stored.last == pair.phone.credentials)
            // The events carry the same values, before `connected`.
            let announced = pair.phoneEvents.all.compactMap { if case .credentialsChanged(let c) = $0 { c } else { nil } }
            #expect(announced == stored)
            // A token never shows in a description.
            #expect(!"\(stored.last!)".contains(stored.last!.deviceSessionToken))
            try await pair.exchangeTraffic("first launch")

            // The app is killed; relaunched from what it stored, it connects, rotates again and talks.
            await pair.phone.close()
            #expect(await pair.phoneRun.value == .closed)
            let restored = Recorder<RelayPhoneCredentials>()
            let relaunched = RelayPhoneClient(
                relayURL: relay.baseURL, credentials: stored.last!, origin: allowedOrigin, configuration: LibraryPair.configuration()
            ) { restored.append($0) }
            let events = EventLog(relaunched.events)
            let run = Task { await relaunched.run() }
            try await events.first { Self.isConnected($0) ? true : nil }
            #expect(restored.all.count == 1)
            #expect(restored.all.first?.deviceSessionToken != stored.last?.deviceSessionToken)
            let commandID = try await relaunched.send(.selectThread(threadID: "thread-2"))
            let command = try await pair.desktopEvents.first { event -> RelayIncomingCommand? in
                if case .command(let command) = event, command.commandID == commandID { command } else { nil }
            }
            #expect(command.command == .selectThread(threadID: "thread-2"))
            #expect(command.deviceID == stored.last?.deviceID)
            await relaunched.close()
            #expect(await run.value == .closed)
            #expect(await eventually { events.isFinished })
            await pair.close()
        }
    }

    @Test func aRevokedPhoneStopsForGood() async throws {
        try await withRelay { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin)
            try await pair.desktop.revokeDevice(try #require(pair.phone.credentials?.deviceID))
            #expect(await pair.phoneRun.value == .ended(reason: "device_revoked"))
            #expect(await eventually { pair.phoneEvents.isFinished })
            let last = try #require(pair.phoneEvents.all.compactMap(Self.disconnection).last)
            #expect(last.knownReason == .deviceRevoked && last.isFinal && last.closeCode == 1008)
            #expect(pair.phoneEvents.all.filter(Self.isConnected).count == 1)
            await #expect(throws: RelayClientError.self) { try await pair.phone.send(.selectThread(threadID: "t")) }
            await pair.close()
        }
    }

    /// Extension 10 through the library: the desktop grants `view`, the phone hears its grant and
    /// is refused, the desktop widens it and the phone's command arrives; an expired grant ends the
    /// phone for good.
    @Test func theDesktopGrantsAndChangesAPhonesScope() async throws {
        try await withRelay { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin, grant: DeviceGrant(scope: .view))
            let deviceID = try #require(pair.phone.credentials?.deviceID)
            _ = try await pair.phoneEvents.first { if case .grant(let g) = $0, g.scope == .view { true } else { nil } }
            #expect(try await pair.desktop.listDevices().first?.grant == DeviceGrant(scope: .view))

            _ = try await pair.phone.send(.selectThread(threadID: "t1"))
            let refusal = try await pair.phoneEvents.first { if case .relayError(let e) = $0 { e } else { nil } }
            #expect(refusal.code == "scope_denied")

            let end = Date().addingTimeInterval(2)
            let stored = try await pair.desktop.setScope(of: deviceID, to: DeviceGrant(scope: .control, allowedCommands: ["thread.select"], expiresAt: end))
            #expect(stored.allowedCommands == ["thread.select"])
            #expect(stored.expiresAtMillis == Int64((end.timeIntervalSince1970 * 1000).rounded(.down)))
            _ = try await pair.phoneEvents.first { if case .grant(let g) = $0, g.scope == .control { true } else { nil } }
            let commandID = try await pair.phone.send(.selectThread(threadID: "t2"))
            _ = try await pair.desktopEvents.first { if case .command(let c) = $0, c.commandID == commandID { true } else { nil } }

            #expect(await pair.phoneRun.value == .ended(reason: "device_expired"))
            await pair.close()
        }
    }

    @Test func aStoppedSessionEndsBothClients() async throws {
        try await withRelay { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin)
            try await pair.desktop.stopSession()
            #expect(await pair.phoneRun.value == .ended(reason: "stopped_by_desktop"))
            #expect(await pair.desktopRun.value == .ended(reason: "stopped_by_desktop"))
            #expect(pair.phoneEvents.all.filter(Self.isConnected).count == 1)
        }
    }

    @Test func aNewPairStartForTheSessionEndsTheOldOne() async throws {
        try await withRelay { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin)
            let again = RelayDesktopClient(relayURL: relay.baseURL, identity: pair.desktop.identity, configuration: LibraryPair.configuration())
            _ = try await again.startPairing()
            #expect(await pair.phoneRun.value == .ended(reason: "replaced_by_new_pair_start"))
            #expect(await pair.desktopRun.value == .ended(reason: "replaced_by_new_pair_start"))
        }
    }

    @Test func aRefusedTokenIsNotTriedAgain() async throws {
        try await withRelay { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin)
            var stale = try #require(pair.phone.credentials)
            stale.deviceSessionToken = RelayTokens.token()
            let phone = RelayPhoneClient(
                relayURL: relay.baseURL, credentials: stale, origin: allowedOrigin, configuration: LibraryPair.configuration())
            let events = EventLog(phone.events)
            #expect(await phone.run() == .ended(reason: "session_expired"))
            #expect(await eventually { events.isFinished })
            let disconnections = events.all.compactMap(Self.disconnection)
            #expect(disconnections.count == 1 && disconnections.first?.closeCode == 1008)
            await pair.close()
        }
    }

    @Test func anotherConnectionOfTheSameDeviceTakesOverWithoutAFight() async throws {
        try await withRelay { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin)
            let twin = RelayPhoneClient(
                relayURL: relay.baseURL, credentials: pair.phone.credentials, origin: allowedOrigin,
                configuration: LibraryPair.configuration())
            let twinEvents = EventLog(twin.events)
            let twinRun = Task { await twin.run() }
            try await twinEvents.first { Self.isConnected($0) ? true : nil }
            #expect(await pair.phoneRun.value == .ended(reason: "device_reconnected"))
            await twin.close()
            #expect(await twinRun.value == .closed)
            await pair.close()
        }
    }

    @Test func bothClientsReconnectAfterTheirNodeIsKilledAndThePhoneResumes() async throws {
        try await withRelayCluster(count: 1) { cluster in
            let pair = try await LibraryPair.make(relayURL: cluster.baseURL(0), origin: allowedOrigin)
            try await pair.exchangeTraffic("before the kill")
            let rotations = pair.storedCredentials.all.count
            let mark = pair.phoneEvents.all.count, desktopMark = pair.desktopEvents.all.count
            try await cluster.kill(0)
            let lost = try await pair.phoneEvents.first(from: mark, Self.disconnection)
            #expect(!lost.isFinal, "\(lost)")
            try await cluster.restart(0)
            try await pair.phoneEvents.first(from: mark) { Self.isConnected($0) ? true : nil }
            try await pair.desktopEvents.first(from: desktopMark) { if case .connected = $0 { true } else { nil } }
            // The new connection rotated the token, and the app heard of it.
            #expect(pair.storedCredentials.all.count > rotations)
            // The phone had processed envelopes: it asked the relay to replay what came after them
            // (extension 11); the history is in Redis, so the node's death lost none of it.
            let resumed = try await pair.phoneEvents.first(from: mark) { event -> Bool? in
                if case .resumed(_, _, let complete) = event { complete } else { nil }
            }
            #expect(resumed, "the history in Redis outlived the node")
            try await pair.exchangeTraffic("after the restart")
            await pair.close()
        }
    }

    /// Extension 11 through the library: an app relaunched with the state it kept resumes from
    /// its last envelope; what the desktop sent meanwhile arrives as envelopes, then `.resumed`,
    /// and no snapshot is asked for. Past the history, `.resumed` is incomplete and a snapshot is.
    @Test func aRelaunchedPhoneResumesFromItsLastEnvelopeWithoutASnapshot() async throws {
        try await withRelay({ $0["HISTORY_MAX_FRAMES"] = "20" }) { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin)
            for _ in 1...3 { try await pair.desktop.send(.event, payload: ["step": "before"]) }
            let seen = try await pair.phoneEvents.first { event -> UInt64? in
                if case .envelope(let e) = event, e.kind == .event, e.payload["step"]?.stringValue == "before", e.seq >= 3 { e.seq } else { nil }
            }
            await pair.phone.close()
            _ = await pair.phoneRun.value
            for _ in 1...10 { try await pair.desktop.send(.event, payload: ["step": "away"]) }
            let credentials = try #require(pair.phone.credentials)

            let relaunched = RelayPhoneClient(
                relayURL: relay.baseURL, credentials: credentials, lastProcessedSeq: seen, origin: allowedOrigin,
                configuration: LibraryPair.configuration())
            let events = EventLog(relaunched.events)
            let run = Task { await relaunched.run() }
            let mark = pair.desktopEvents.all.count
            let resumed = try await events.first { event -> (UInt64, UInt64, Bool)? in
                if case .resumed(let from, let to, let complete) = event { (from, to, complete) } else { nil }
            }
            #expect(resumed.0 == seen + 1 && resumed.1 == seen + 10 && resumed.2)
            let replayed = events.all.compactMap { event -> UInt64? in if case .envelope(let e) = event { e.seq } else { nil } }
            #expect(replayed == Array((seen + 1)...(seen + 10)))
            #expect(events.all.compactMap { if case .sequenceGap = $0 { true } else { nil } }.isEmpty)
            // A command after the resume reaches the desktop behind anything the phone sent before it.
            let commandID = try await relaunched.send(.selectThread(threadID: "t"))
            _ = try await pair.desktopEvents.first(from: mark) { if case .command(let c) = $0, c.commandID == commandID { true } else { nil } }
            #expect(!pair.desktopEvents.all[mark...].contains { if case .snapshotRequest = $0 { true } else { false } })
            await relaunched.close()
            _ = await run.value

            // Gone longer than the history holds: incomplete, and the desktop is asked.
            for _ in 1...30 { try await pair.desktop.send(.event, payload: ["step": "long away"]) }
            let again = RelayPhoneClient(
                relayURL: relay.baseURL, credentials: relaunched.credentials, lastProcessedSeq: seen + 10,
                origin: allowedOrigin, configuration: LibraryPair.configuration())
            let againEvents = EventLog(again.events)
            let againRun = Task { await again.run() }
            let incomplete = try await againEvents.first { event -> Bool? in
                if case .resumed(_, _, let complete) = event { complete } else { nil }
            }
            #expect(!incomplete)
            let request = try await pair.desktopEvents.first(from: mark) { event -> RelaySnapshotRequest? in
                if case .snapshotRequest(let request) = event { request } else { nil }
            }
            #expect(request.reason == "resume_incomplete")
            await again.close()
            _ = await againRun.value
            await pair.close()
        }
    }

    @Test func aDrainingNodeIsLeftAtOnceAndTheClientsComeBack() async throws {
        try await withRelayCluster(count: 1) { cluster in
            let pair = try await LibraryPair.make(relayURL: cluster.baseURL(0), origin: allowedOrigin)
            let mark = pair.phoneEvents.all.count, desktopMark = pair.desktopEvents.all.count
            try await cluster.stop(0)
            let drained = try await pair.phoneEvents.first(from: mark, Self.disconnection)
            #expect(drained.knownReason == .serverShutdown && drained.closeCode == 1012, "\(drained)")
            #expect(drained.reconnectDelay == .zero)
            try await cluster.restart(0)
            try await pair.phoneEvents.first(from: mark) { Self.isConnected($0) ? true : nil }
            try await pair.desktopEvents.first(from: desktopMark) { if case .connected = $0 { true } else { nil } }
            try await pair.exchangeTraffic("after the drain")
            await pair.close()
        }
    }

    @Test func aSequenceGapAsksTheDesktopForOneSnapshot() async throws {
        try await withRelay { relay in
            // A frame-level desktop, so the test can skip numbers as a lossy path would.
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            #expect(try await desktop.startPairing().status == 200)
            try await desktop.connect()
            let link = try RelayJoinLink(sessionID: desktop.sessionID, joinToken: desktop.joinToken, relayBaseURL: relay.baseURL)
            async let joined = RelayPhoneClient.join(link, deviceName: nil, origin: allowedOrigin, configuration: LibraryPair.configuration())
            let request = try await desktop.nextPairRequest()
            try await desktop.decide(requestID: request.requestID, approved: true)
            let phone = try await joined
            let events = EventLog(phone.events)
            let run = Task { await phone.run() }
            try await events.first { Self.isConnected($0) ? true : nil }
            // A new connection asks for a snapshot (the desktop's hello went out before it).
            let first = try await Self.nextSnapshotRequest(desktop.socket)
            #expect(first["reason"]?.stringValue == "connected", "\(first)")
            _ = try await desktop.sendEnvelope(seq: 1, payloadType: "snapshot")

            for seq: UInt64 in [2, 5, 6] { try await desktop.sendEvent(seq: seq) }
            try await events.first { event -> Bool? in if case .envelope(let e) = event, e.seq == 6 { true } else { nil } }
            let gaps = events.all.compactMap { event -> [UInt64]? in
                if case .sequenceGap(let expected, let received) = event { [expected, received] } else { nil }
            }
            #expect(gaps == [[3, 5]])
            let snapshotRequest = try await Self.nextSnapshotRequest(desktop.socket)
            #expect(snapshotRequest["reason"]?.stringValue == "sequence_gap")
            #expect(snapshotRequest["lastSeq"]?.uint64Value == 2)
            // The snapshot is the new baseline; what follows it is in order, and nothing more is asked.
            _ = try await desktop.sendEnvelope(seq: 9, payloadType: "snapshot")
            try await desktop.sendEvent(seq: 10)
            try await events.first { event -> Bool? in if case .envelope(let e) = event, e.seq == 10 { true } else { nil } }
            #expect(events.all.compactMap { if case .sequenceGap = $0 { true } else { nil } }.count == 1)
            try await expectNothingQueued(forDesktop: desktop.socket)
            await phone.close()
            _ = await run.value
            await desktop.disconnect()
        }
    }
}

import Crypto
import Foundation
import RelayLocalCluster
import RelayProtocol
import RelayRedis
import RelayTestClient
import RelayTestSupport
import Testing

@testable import RelayClient

/// Extension 12 through the client library, over real sockets: a phone paired through an `e2e=1`
/// link talks to its desktop in sealed envelopes the relay cannot read; every frame a client did
/// not expect (tampered, replayed, from another session or epoch, plaintext) is refused; revokes
/// and desktop restarts begin new epochs; resumed history opens.
@Suite("End-to-end encryption through the client library", .serialized, .timeLimit(.minutes(3)))
struct EndToEndClientTests {
    static func endToEndEvent<Event: Sendable>(_ log: EventLog<Event>, from start: Int = 0, _ extract: @escaping (Event) -> RelayEndToEndEvent?, _ match: @escaping (RelayEndToEndEvent) -> Bool) async throws -> RelayEndToEndEvent {
        try await log.first(from: start) { event in extract(event).flatMap { match($0) ? $0 : nil } }
    }

    static func phoneE2E(_ event: RelayPhoneEvent) -> RelayEndToEndEvent? { if case .endToEnd(let e) = event { e } else { nil } }
    static func desktopE2E(_ event: RelayDesktopEvent) -> RelayEndToEndEvent? { if case .endToEnd(let e) = event { e } else { nil } }

    /// The phone's next envelope (opened) whose payload has `label`.
    static func envelope(_ pair: LibraryPair, from start: Int = 0, label: String) async throws -> RelayEnvelope {
        try await pair.phoneEvents.first(from: start) { event in
            if case .envelope(let e) = event, e.payload["label"]?.stringValue == label { e } else { nil }
        }
    }

    /// `text` with its top-level members changed.
    static func rewrite(_ text: String, _ change: (inout [String: JSONValue]) -> Void) throws -> String {
        var members = try #require(try JSONValue.parse(text).objectValue)
        change(&members)
        return JSONValue.object(members).serialized
    }

    static func flipFirstCiphertextCharacter(_ payload: JSONValue) -> JSONValue {
        var members = payload.objectValue ?? [:]
        let text = members["ciphertext"]?.stringValue ?? ""
        let flipped = (text.first == "A" ? "B" : "A") + text.dropFirst()
        members["ciphertext"] = .string(String(flipped))
        return .object(members)
    }

    @Test func aPairingThroughAnE2ELinkCarriesSealedCommandsAndEventsOnARelayThatRequiresThem() async throws {
        try await withRelay({ $0["E2E_MODE"] = "required" }) { relay in
            let stored = Recorder<RelayDesktopEndToEndKeys>()
            let keys = RelayDesktopEndToEndKeys.generate()
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin, endToEnd: keys)
            // The link carried the desktop's key and a secret; the phone stored its keys, pinned.
            let credentials = try #require(pair.phone.credentials)
            let phoneKeys = try #require(credentials.endToEnd)
            #expect(phoneKeys.desktopStaticKey == (try keys.staticPublicKey))
            #expect(phoneKeys.pinned && phoneKeys.epochKeys.count == 1)
            #expect(!"\(credentials)".contains(Base64URL.encode(phoneKeys.staticPrivateKey)))
            let pinned = try #require(pair.desktop.endToEndKeys)
            #expect(pinned.pinnedPhones[credentials.deviceID]?.staticKey.count == 32)
            _ = stored

            try await pair.exchangeTraffic("sealed both ways")
            // What the phone received was sealed on the wire: the label is only in the opened payload.
            let received = try await Self.envelope(pair, label: "sealed both ways")
            #expect(received.kind == .event)
            #expect(!received.text.contains("sealed both ways") && received.text.contains(#""type":"sealed""#))
            #expect(try #require(pair.phone.lastCommandFrame).contains(#""type":"sealed""#))
            await pair.close()
        }
    }

    @Test func tamperedReplayedForeignPlaintextAndOtherEpochFramesAreRefusedByTheReceivingClient() async throws {
        try await withRelay { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin, endToEnd: .generate())
            let other = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin, endToEnd: .generate())
            try await pair.exchangeTraffic("one")
            try await other.exchangeTraffic("elsewhere")
            let genuine = try await Self.envelope(pair, label: "one")
            let foreign = try await Self.envelope(other, label: "elsewhere")
            let sessionID = pair.desktop.identity.sessionID
            let epoch = try #require(try JSONValue.parse(genuine.text)["payload"]?["epoch"]?.uint64Value)

            // Desktop to phone. The same frame again: a replay.
            var mark = pair.phoneEvents.all.count
            try await pair.desktop.sendRawText(genuine.text)
            #expect(try await Self.endToEndEvent(pair.phoneEvents, from: mark, Self.phoneE2E) { if case .refused = $0 { true } else { false } }
                == .refused(deviceID: nil, .replayed(seq: genuine.seq)))
            // The same ciphertext under the next seq, a flipped ciphertext, another session's
            // ciphertext: none opens.
            let next = genuine.seq + 1
            let forgeries = [
                try Self.rewrite(genuine.text) { $0["seq"] = .int(next) },
                try Self.rewrite(genuine.text) { $0["seq"] = .int(next); $0["payload"] = Self.flipFirstCiphertextCharacter($0["payload"]!) },
                try Self.rewrite(foreign.text) { $0["seq"] = .int(next); $0["sessionID"] = .string(sessionID); $0["payload"] = {
                    var p = $0["payload"]!.objectValue!; p["epoch"] = .int(epoch); return .object(p) }($0) },
            ]
            for forgery in forgeries {
                mark = pair.phoneEvents.all.count
                try await pair.desktop.sendRawText(forgery)
                #expect(try await Self.endToEndEvent(pair.phoneEvents, from: mark, Self.phoneE2E) { if case .refused = $0 { true } else { false } }
                    == .refused(deviceID: nil, .authenticationFailed))
            }
            // An epoch this desktop never began: the phone asks for keys once, then refuses it.
            mark = pair.phoneEvents.all.count
            try await pair.desktop.sendRawText(try Self.rewrite(genuine.text) { $0["seq"] = .int(next); $0["payload"] = {
                var p = $0["payload"]!.objectValue!; p["epoch"] = .int(epoch + 7); return .object(p) }($0) })
            #expect(try await Self.endToEndEvent(pair.phoneEvents, from: mark, Self.phoneE2E) { if case .refused = $0 { true } else { false } }
                == .refused(deviceID: nil, .unknownEpoch(epoch + 7)))
            // Plaintext once end-to-end: refused.
            mark = pair.phoneEvents.all.count
            try await pair.desktop.sendRawText(RelayEnvelope.serialize(sessionID: sessionID, seq: next, kind: .event, payload: ["label": "plain"]))
            let plaintext = try await Self.endToEndEvent(pair.phoneEvents, from: mark, Self.phoneE2E) { if case .refused = $0 { true } else { false } }
            #expect(plaintext == .refused(deviceID: nil, .plaintextRefused("a plaintext 'event' envelope")))
            // Nor is anything else unsealed the desktop (or a relay) sends.
            mark = pair.phoneEvents.all.count
            try await pair.desktop.sendRawText(#"{"type":"custom","note":"plain"}"#)
            #expect(try await Self.endToEndEvent(pair.phoneEvents, from: mark, Self.phoneE2E) { if case .refused = $0 { true } else { false } }
                == .refused(deviceID: nil, .plaintextRefused("a desktop frame that is not an envelope")))
            // None reached the app, and the desktop's next envelope (at the seq the forgeries used) opens.
            try await pair.exchangeTraffic("after the forgeries")
            #expect(!pair.phoneEvents.all[mark...].contains { if case .envelope(let e) = $0 { e.payload["label"]?.stringValue == "plain" } else { false } })

            // Phone to desktop: a command replayed under a later seq (the relay's guard passes it)
            // and a flipped one do not open; plaintext is refused.
            let deviceID = try #require(pair.phone.credentials?.deviceID)
            let sent = try #require(pair.phone.lastCommandFrame)
            let sentSeq = try #require(try JSONValue.parse(sent)["seq"]?.uint64Value)
            for (index, forgery) in [
                try Self.rewrite(sent) { $0["seq"] = .int(sentSeq + 100) },
                try Self.rewrite(sent) { $0["seq"] = .int(sentSeq + 101); $0["payload"] = Self.flipFirstCiphertextCharacter($0["payload"]!) },
            ].enumerated() {
                let desktopMark = pair.desktopEvents.all.count
                try await pair.phone.sendRawText(forgery)
                #expect(try await Self.endToEndEvent(pair.desktopEvents, from: desktopMark, Self.desktopE2E) { if case .refused = $0 { true } else { false } }
                    == .refused(deviceID: deviceID, .authenticationFailed), "forgery \(index)")
            }
            let desktopMark = pair.desktopEvents.all.count
            try await pair.phone.sendRawText(RelayCommand.envelope(sessionID: sessionID, seq: sentSeq + 200, name: "thread.select", commandID: "c1", fields: ["threadID": "t"]))
            #expect(try await Self.endToEndEvent(pair.desktopEvents, from: desktopMark, Self.desktopE2E) { if case .refused = $0 { true } else { false } }
                == .refused(deviceID: deviceID, .plaintextRefused("a plaintext command")))
            #expect(!pair.desktopEvents.all[desktopMark...].contains { if case .command = $0 { true } else { false } })
            await pair.close()
            await other.close()
        }
    }

    @Test func theDesktopEnforcesGrantsTheRelayCannotReadAndAViewPhoneIsRefusedByTheRelay() async throws {
        try await withRelay { relay in
            let limited = try await LibraryPair.make(
                relayURL: relay.baseURL, origin: allowedOrigin, grant: DeviceGrant(scope: .control, allowedCommands: ["thread.select"]),
                endToEnd: .generate())
            let deviceID = try #require(limited.phone.credentials?.deviceID)
            let mark = limited.desktopEvents.all.count
            _ = try await limited.phone.send(.sendMessage(threadID: "t", text: "not allowed"))
            #expect(try await Self.endToEndEvent(limited.desktopEvents, from: mark, Self.desktopE2E) { if case .commandRefused = $0 { true } else { false } }
                == .commandRefused(deviceID: deviceID, code: "scope_denied", message: "This device is not allowed to send 'thread.send_message'."))
            let allowed = try await limited.phone.send(.selectThread(threadID: "t"))
            _ = try await limited.desktopEvents.first(from: mark) { if case .command(let c) = $0, c.commandID == allowed { true } else { nil } }
            #expect(!limited.desktopEvents.all[mark...].contains { if case .command(let c) = $0 { c.name == "thread.send_message" } else { false } })
            // Widened by /devices/scope: the desktop lets it through.
            try await limited.desktop.setScope(of: deviceID, to: DeviceGrant(scope: .control))
            let widened = try await limited.phone.send(.sendMessage(threadID: "t", text: "now allowed"))
            _ = try await limited.desktopEvents.first(from: mark) { if case .command(let c) = $0, c.commandID == widened { true } else { nil } }
            // A command that breaks the protocol's own rules inside the seal is refused as the relay would.
            let badMark = limited.desktopEvents.all.count
            _ = try await limited.phone.send(.selectThread(threadID: "not compact!"))
            #expect(try await Self.endToEndEvent(limited.desktopEvents, from: badMark, Self.desktopE2E) { if case .commandRefused = $0 { true } else { false } }
                == .commandRefused(deviceID: deviceID, code: "invalid_command", message: "threadID must be a compact identifier."))
            await limited.close()

            let viewer = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin, grant: DeviceGrant(scope: .view), endToEnd: .generate())
            let viewMark = viewer.phoneEvents.all.count
            _ = try await viewer.phone.send(.selectThread(threadID: "t"))
            let refusal = try await viewer.phoneEvents.first(from: viewMark) { if case .relayError(let e) = $0 { e } else { nil } }
            #expect(refusal.code == "scope_denied")
            // Unpinned (it cannot prove its secret with a sealed frame), it stays bound to the
            // secret, so its later connections pair with IKpsk2 again; it opens what the desktop sends.
            let viewerID = try #require(viewer.phone.credentials?.deviceID)
            #expect(viewer.desktop.endToEndKeys?.unpinnedPhones[viewerID] != nil)
            #expect(viewer.phone.credentials?.endToEnd?.pinned == false)
            try await viewer.desktop.send(.event, payload: ["label": "to the viewer"])
            _ = try await Self.envelope(viewer, from: viewMark, label: "to the viewer")
            await viewer.close()
        }
    }

    @Test func aRevokeAndADesktopRestartEachBeginANewEpochTheRevokedPhoneCannotRead() async throws {
        try await withRelay { relay in
            let keys = Recorder<RelayDesktopEndToEndKeys>()
            let identity = RelayDesktopIdentity.generate()
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin, endToEnd: .generate(), identity: identity)
            // A second phone through a refreshed link.
            let link = try await pair.desktop.refreshJoinToken()
            let approver = Task {
                let request = try await pair.desktopEvents.first { if case .pairingRequest(let r) = $0, r.deviceName == "second" { r } else { nil } }
                try await pair.desktop.decide(request, approve: true)
            }
            let second = try await RelayPhoneClient.join(
                try RelayJoinLink(parsing: link.link(page: "https://app.example/pair")), deviceName: "second", origin: allowedOrigin,
                configuration: LibraryPair.configuration())
            try await approver.value
            let secondEvents = EventLog(second.events)
            let secondRun = Task { await second.run() }
            _ = try await Self.endToEndEvent(secondEvents, Self.phoneE2E) { if case .secured = $0 { true } else { false } }
            let secondID = try #require(second.credentials?.deviceID)
            _ = try await Self.endToEndEvent(pair.desktopEvents, Self.desktopE2E) { $0 == .pinned(deviceID: secondID) }
            _ = keys

            // Revoke the second phone: the first gets epoch 1's key, the second is gone.
            let mark = pair.phoneEvents.all.count
            try await pair.desktop.revokeDevice(secondID)
            #expect(try await Self.endToEndEvent(pair.phoneEvents, from: mark, Self.phoneE2E) { if case .rekeyed = $0 { true } else { false } } == .rekeyed(epoch: 1))
            #expect(await secondRun.value == .ended(reason: "device_revoked"))
            #expect(pair.desktop.endToEndKeys?.pinnedPhones[secondID] == nil)
            try await pair.exchangeTraffic("after the revoke")
            let afterRevoke = try await Self.envelope(pair, from: mark, label: "after the revoke")
            #expect(try JSONValue.parse(afterRevoke.text)["payload"]?["epoch"]?.uint64Value == 1)
            // Every key the revoked phone holds fails on the new epoch's frame.
            let revokedKeys = try #require(second.credentials?.endToEnd?.epochKeys)
            #expect(revokedKeys[1] == nil && !revokedKeys.isEmpty)
            let frame = try JSONValue.parse(afterRevoke.text)
            let shell = try #require(EnvelopeShell(envelope: frame))
            for key in revokedKeys.values {
                #expect(throws: EndToEndError.authenticationFailed) {
                    try shell.open(frame["payload"]?["ciphertext"]?.stringValue ?? "", key: SymmetricKey(data: key))
                }
            }

            // The desktop restarts from what it stored, numbering from 1 again: a new epoch, which
            // the phone (still connected) learns by a KK handshake when the desktop is back.
            let stored = try #require(pair.desktop.endToEndKeys)
            await pair.desktop.close()
            _ = await pair.desktopRun.value
            let restartMark = pair.phoneEvents.all.count
            let restarted = RelayDesktopClient(
                relayURL: relay.baseURL, identity: identity, configuration: LibraryPair.configuration(), firstSeq: 1, endToEnd: stored)
            #expect(restarted.endToEndKeys?.lastEpoch == 2)
            let restartedEvents = EventLog(restarted.events)
            let restartedRun = Task { await restarted.run() }
            _ = try await restartedEvents.first { if case .connected = $0 { true } else { nil } }
            #expect(try await Self.endToEndEvent(pair.phoneEvents, from: restartMark, Self.phoneE2E) { if case .secured = $0 { true } else { false } }
                == .secured(deviceID: try #require(pair.phone.credentials?.deviceID), epoch: 2))
            let seq = try await restarted.send(.event, payload: ["label": "restarted"])
            #expect(seq == 2, "the KK reply took seq 1")
            let opened = try await Self.envelope(pair, from: restartMark, label: "restarted")
            #expect(try JSONValue.parse(opened.text)["payload"]?["epoch"]?.uint64Value == 2)
            await restarted.close()
            _ = await restartedRun.value
            await pair.phone.close()
            _ = await pair.phoneRun.value
        }
    }

    /// A phone that believes itself pinned meets a desktop that never pinned it (its first sealed
    /// frame was lost): its KK handshake goes unanswered, and after the request timeout it proves
    /// its pairing secret again with IKpsk2 and is pinned.
    @Test func aPhoneWhoseKKGoesUnansweredFallsBackToIKpsk2AndIsPinned() async throws {
        try await withRelay { relay in
            var configuration = LibraryPair.configuration()
            configuration.requestTimeout = .seconds(2)
            let identity = RelayDesktopIdentity.generate()
            let pair = try await LibraryPair.make(
                relayURL: relay.baseURL, origin: allowedOrigin, configuration: configuration, endToEnd: .generate(), identity: identity)
            let credentials = try #require(pair.phone.credentials)
            let secret = try #require(credentials.endToEnd?.pairingSecret)
            // The desktop's keys as they were before the pin: the phone bound to its secret.
            var keys = try #require(pair.desktop.endToEndKeys)
            keys.pinnedPhones[credentials.deviceID] = nil
            keys.unpinnedPhones[credentials.deviceID] = .init(pairingSecret: secret)
            await pair.desktop.close()
            _ = await pair.desktopRun.value

            let mark = pair.phoneEvents.all.count
            let restarted = RelayDesktopClient(relayURL: relay.baseURL, identity: identity, configuration: configuration, endToEnd: keys)
            let events = EventLog(restarted.events)
            let run = Task { await restarted.run() }
            let refusal = try await Self.endToEndEvent(events, Self.desktopE2E) { if case .refused = $0 { true } else { false } }
            #expect(refusal == .refused(deviceID: credentials.deviceID, .handshakeFailed("KK from a phone this desktop has not pinned")))
            _ = try await Self.endToEndEvent(events, Self.desktopE2E) { $0 == .pinned(deviceID: credentials.deviceID) }
            #expect(pair.phoneEvents.all[mark...].contains { if case .endToEnd(.refused(_, .handshakeFailed)) = $0 { true } else { false } })
            let commandID = try await pair.phone.send(.selectThread(threadID: "t"))
            _ = try await events.first { if case .command(let c) = $0, c.commandID == commandID { true } else { nil } }
            #expect(restarted.endToEndKeys?.pinnedPhones[credentials.deviceID]?.pairingSecret == secret)

            // The other way round: a phone restored from credentials saved before its pin runs
            // IKpsk2 although the desktop pinned it; the desktop accepts it with the same static key.
            await pair.phone.close()
            _ = await pair.phoneRun.value
            var unpinned = try #require(pair.phone.credentials)
            unpinned.endToEnd?.pinned = false
            let restored = RelayPhoneClient(relayURL: relay.baseURL, credentials: unpinned, origin: allowedOrigin, configuration: configuration)
            let restoredEvents = EventLog(restored.events)
            let restoredRun = Task { await restored.run() }
            let desktopMark = events.all.count
            _ = try await Self.endToEndEvent(restoredEvents, Self.phoneE2E) { if case .secured = $0 { true } else { false } }
            _ = try await Self.endToEndEvent(events, from: desktopMark, Self.desktopE2E) { $0 == .secured(deviceID: credentials.deviceID, epoch: nil) }
            let again = try await restored.send(.selectThread(threadID: "t"))
            _ = try await events.first(from: desktopMark) { if case .command(let c) = $0, c.commandID == again { true } else { nil } }
            #expect(restored.credentials?.endToEnd?.pinned == true)
            await restored.close()
            _ = await restoredRun.value
            await restarted.close()
            _ = await run.value
        }
    }

    @Test func aPhoneThatReconnectsResumesAndOpensTheReplayedSealedHistory() async throws {
        try await withRelay({ $0["HISTORY_MAX_FRAMES"] = "64" }) { relay in
            let pair = try await LibraryPair.make(relayURL: relay.baseURL, origin: allowedOrigin, endToEnd: .generate())
            for step in 1...3 { try await pair.desktop.send(.event, payload: ["label": .string("before \(step)")]) }
            let seen = try await Self.envelope(pair, label: "before 3").seq
            await pair.phone.close()
            _ = await pair.phoneRun.value
            for step in 1...5 { try await pair.desktop.send(.event, payload: ["label": .string("away \(step)")]) }

            let relaunched = RelayPhoneClient(
                relayURL: relay.baseURL, credentials: pair.phone.credentials, lastProcessedSeq: seen, origin: allowedOrigin,
                configuration: LibraryPair.configuration())
            let events = EventLog(relaunched.events)
            let run = Task { await relaunched.run() }
            let resumed = try await events.first { if case .resumed(let from, let to, let complete) = $0 { (from, to, complete) } else { nil } }
            // The new connection's KK reply may come live during the replay and end it (toSeq).
            #expect(resumed.0 == seen + 1 && resumed.1 >= seen + 5 && resumed.2, "\(resumed)")
            let labels = events.all.compactMap { if case .envelope(let e) = $0 { e.payload["label"]?.stringValue } else { nil } }
            #expect(labels == (1...5).map { "away \($0)" })
            #expect(!events.all.contains { if case .endToEnd(.refused) = $0 { true } else { false } })
            await relaunched.close()
            _ = await run.value
            await pair.desktop.close()
            _ = await pair.desktopRun.value
        }
    }

    // MARK: Cluster

    /// A desktop on node 0 and a phone that joins through node 1 (so every frame between them
    /// crosses NATS), both running; with `keys`, the phone is secured and pinned.
    static func crossNodePair(_ cluster: LocalCluster, keys: RelayDesktopEndToEndKeys?) async throws
        -> (desktop: RelayDesktopClient, desktopEvents: EventLog<RelayDesktopEvent>, phone: RelayPhoneClient, phoneEvents: EventLog<RelayPhoneEvent>, runs: [Task<RelayConnectionEnd, Never>])
    {
        let desktop = RelayDesktopClient(relayURL: cluster.baseURL(0), identity: .generate(), configuration: LibraryPair.configuration(), endToEnd: keys)
        let link = try await desktop.startPairing()
        let desktopEvents = EventLog(desktop.events)
        let desktopRun = Task { await desktop.run() }
        _ = try await desktopEvents.first { if case .connected = $0 { true } else { nil } }
        let approver = Task {
            let request = try await desktopEvents.first { if case .pairingRequest(let r) = $0 { r } else { nil } }
            try await desktop.decide(request, approve: true)
        }
        let phone = RelayPhoneClient(relayURL: cluster.baseURL(1), credentials: nil, origin: allowedOrigin, configuration: LibraryPair.configuration())
        try await phone.join(try RelayJoinLink(parsing: link.link(page: "https://app.example/pair")))
        try await approver.value
        let phoneEvents = EventLog(phone.events)
        let phoneRun = Task { await phone.run() }
        _ = try await phoneEvents.first { if case .connected(true) = $0 { true } else { nil } }
        if keys != nil {
            _ = try await endToEndEvent(phoneEvents, phoneE2E) { if case .secured = $0 { true } else { false } }
            _ = try await endToEndEvent(desktopEvents, desktopE2E) { if case .pinned = $0 { true } else { false } }
        }
        return (desktop, desktopEvents, phone, phoneEvents, [desktopRun, phoneRun])
    }

    /// A marker in a command and in events, both ways across two nodes: the desktop and the phone
    /// read it (the phone also after resuming on another node from the sealed history in Redis),
    /// and it appears in no relay log line at trace level, no Redis key or value and no NATS
    /// message, where a marker sent in plaintext by a contract pair does appear (the taps see what
    /// crosses).
    @Test func aMarkerSentBothWaysAcrossNodesIsInNoLogNoRedisValueAndNoNATSMessage() async throws {
        try await withRelayCluster(count: 2, environment: ["LOG_LEVEL": "trace"]) { cluster in
            let natsPort = try #require(URLComponents(string: cluster.natsURL)?.port)
            let tap = try await RawConnection.connect(port: natsPort)
            try await tap.send("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB > 1\r\nPING\r\n")
            let subscribed = await eventually(timeout: .seconds(10)) { String(decoding: tap.received, as: UTF8.self).contains("PONG") }
            try #require(subscribed, "the NATS tap did not subscribe")

            let marker = "E2E-MARKER-" + Identifiers.random(bytes: 12)
            let sealed = try await Self.crossNodePair(cluster, keys: .generate())
            let commandID = try await sealed.phone.send(.sendMessage(threadID: "t", text: marker))
            let command = try await sealed.desktopEvents.first { if case .command(let c) = $0, c.commandID == commandID { c } else { nil } }
            #expect(command.command == .sendMessage(threadID: "t", text: marker))
            try await sealed.desktop.send(.event, payload: ["text": .string(marker)])
            let seen = try await sealed.phoneEvents.first { if case .envelope(let e) = $0, e.payload["text"]?.stringValue == marker { e.seq } else { nil } }

            // The phone goes away; relaunched on node 1 it resumes from Redis and opens what it missed.
            await sealed.phone.close()
            for step in 1...3 { try await sealed.desktop.send(.event, payload: ["text": .string("\(marker) away \(step)")]) }
            let relaunched = RelayPhoneClient(
                relayURL: cluster.baseURL(1), credentials: sealed.phone.credentials, lastProcessedSeq: seen, origin: allowedOrigin,
                configuration: LibraryPair.configuration())
            let relaunchedEvents = EventLog(relaunched.events)
            let relaunchedRun = Task { await relaunched.run() }
            let resumed = try await relaunchedEvents.first { if case .resumed(let from, let to, let complete) = $0 { (from, to, complete) } else { nil } }
            // The new connection's KK reply may come live during the replay and end it (toSeq).
            #expect(resumed.0 == seen + 1 && resumed.1 >= seen + 3 && resumed.2, "\(resumed)")
            #expect(relaunchedEvents.all.compactMap { if case .envelope(let e) = $0 { e.payload["text"]?.stringValue } else { nil } }
                == (1...3).map { "\(marker) away \($0)" })
            await relaunched.close()
            _ = await relaunchedRun.value

            // The control: a contract pair's plaintext crosses NATS where the tap sees it.
            let control = "PLAIN-MARKER-" + Identifiers.random(bytes: 12)
            let plain = try await Self.crossNodePair(cluster, keys: nil)
            try await plain.desktop.send(.event, payload: ["text": .string(control)])
            _ = try await plain.phoneEvents.first { if case .envelope(let e) = $0, e.payload["text"]?.stringValue == control { true } else { nil } }
            let tapped = await eventually(timeout: .seconds(10)) { String(decoding: tap.received, as: UTF8.self).contains(control) }
            #expect(tapped, "the tap saw the plaintext marker cross NATS")

            // Redis: every key and value under the cluster's prefix, once the sealed history is written.
            let redis = try await ClusterTruthTests.redis(cluster)
            let sessionID = sealed.desktop.identity.sessionID
            let written = await eventually(timeout: .seconds(10)) {
                let keys = (try? await redis.send("KEYS", "\(cluster.keyPrefix):*").array?.compactMap(\.text)) ?? []
                return keys.contains { $0.contains("history") && $0.hasSuffix(sessionID) }
            }
            #expect(written, "the sealed history reached Redis")
            var stored: [String] = []
            for key in try await redis.send("KEYS", "\(cluster.keyPrefix):*").array?.compactMap(\.text) ?? [] {
                stored.append(key)
                switch try await redis.send("TYPE", key) {
                case .status("string"): stored.append(try await redis.send("GET", key).text ?? "")
                case .status("set"): stored += try await redis.send("SMEMBERS", key).array?.compactMap(\.text) ?? []
                case .status("hash"): stored += try await redis.send("HGETALL", key).array?.compactMap(\.text) ?? []
                case .status("list"): stored += try await redis.send("LRANGE", key, "0", "-1").array?.compactMap(\.text) ?? []
                case .status("zset"): stored += try await redis.send("ZRANGE", key, "0", "-1").array?.compactMap(\.text) ?? []
                case let other: Issue.record("unexpected key type \(other) of \(key)")
                }
            }
            #expect(stored.contains { $0.contains(#""type":"sealed""#) }, "the sealed history is in Redis")
            #expect(stored.contains { $0.contains(control) }, "the plaintext pair's history carries its marker")
            #expect(!stored.contains { $0.contains(marker) }, "the marker is readable in Redis")

            let crossed = String(decoding: tap.received, as: UTF8.self)
            #expect(crossed.contains(sessionID), "the sealed pair's frames crossed NATS")
            #expect(!crossed.contains(marker), "the marker is readable on NATS")
            for run in sealed.runs + plain.runs { run.cancel() }
            await sealed.phone.close()
            await sealed.desktop.close()
            await plain.phone.close()
            await plain.desktop.close()
            for run in sealed.runs + plain.runs { _ = await run.value }
            tap.close()
            for node in 0..<2 {
                let logs = cluster.logs(node)
                #expect(logs.contains("trace") || logs.contains("listening"), "node \(node) logged nothing")
                #expect(!logs.contains(marker), "the marker is in node \(node)'s log")
            }
        }
    }
}

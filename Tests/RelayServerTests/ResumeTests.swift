import Foundation
import Logging
import RelayLocalCluster
import RelayRedis
import RelayProtocol
import RelayTestClient
import RelayTestSupport
import Testing

/// Extension 11 (DECISIONS): a phone that drops and resumes gets exactly what it missed, in order
/// and once each, from any node, with the desktop online or not, and hears when it cannot.
@Suite("Resume", .serialized, .timeLimit(.minutes(3)))
struct ResumeTests {
    /// Reads `socket` until `relay.resumed`: the envelope texts before it, and it.
    static func readReplay(_ socket: RelayWebSocket) async throws -> (envelopes: [String], resumed: JSONValue) {
        var envelopes: [String] = []
        while true {
            let text = try await socket.nextText(timeout: .seconds(20))
            let json = try JSONValue.parse(text)
            if json.type == "relay.resumed" { return (envelopes, json) }
            if json["seq"] != nil { envelopes.append(text) }
        }
    }

    /// Reads envelope texts from `socket` until `count` have come (other frames skipped).
    static func readEnvelopes(_ socket: RelayWebSocket, count: Int) async throws -> [String] {
        var envelopes: [String] = []
        while envelopes.count < count {
            let text = try await socket.nextText(timeout: .seconds(20))
            if (try? JSONValue.parse(text))?["seq"] != nil { envelopes.append(text) }
        }
        return envelopes
    }

    static func resume(_ phone: RelayPhone, lastSeq: UInt64) async throws {
        let sessionID = try #require(phone.sessionID)
        try await phone.socket.sendText(
            JSONValue.object(["type": "relay.resume", "sessionID": .string(sessionID), "lastSeq": .int(lastSeq)]).serialized)
    }

    static func seqs(_ texts: [String]) -> [Int] { texts.compactMap { (try? JSONValue.parse($0))?["seq"]?.intValue } }

    /// Desktop sends 1…5 live, the phone leaves, 6…205 are sent, the phone resumes from 5 while
    /// the desktop sends 206…255 live: it sees 6…255 exactly once, in order, the replay ending
    /// with `relay.resumed` complete.
    static func dropAndResume(
        desktop: RelayDesktop, phone: RelayPhone, phoneSocketURL: String?, desktopLeaves: Bool = false
    ) async throws {
        var sent: [String] = []
        for seq in 1...5 { sent.append(try await desktop.sendEvent(seq: UInt64(seq), payload: ["n": .int(seq)])) }
        #expect(try await readEnvelopes(phone.socket, count: 5) == sent)
        await phone.disconnect()
        for seq in 6...205 { sent.append(try await desktop.sendEvent(seq: UInt64(seq), payload: ["n": .int(seq)])) }
        if desktopLeaves { await desktop.disconnect() }

        _ = try await phone.connect(url: phoneSocketURL)
        try await resume(phone, lastSeq: 5)
        let live: Task<[String], any Error>? = desktopLeaves ? nil : Task {
            var texts: [String] = []
            for seq in 206...255 { texts.append(try await desktop.sendEvent(seq: UInt64(seq), payload: ["n": .int(seq)])) }
            return texts
        }
        let (replayed, resumed) = try await readReplay(phone.socket)
        #expect(resumed["complete"]?.boolValue == true, "\(resumed)")
        #expect(resumed["fromSeq"]?.intValue == 6)
        if let live {
            let liveSent = try await live.value
            let rest = try await readEnvelopes(phone.socket, count: 255 - 5 - replayed.count)
            // Envelopes that reached the phone's node before its relay.resume are delivered live
            // and not replayed again: before relay.resumed come that live run, then the replay,
            // each in order and the replay below the live run; after it, the rest in order.
            let before = seqs(replayed)
            let split = before.indices.dropFirst().first { before[$0] < before[$0 - 1] } ?? before.count
            let liveRun = Array(before[..<split]), replayRun = Array(before[split...])
            let (earlier, replay) = replayRun.isEmpty ? ([], liveRun) : (liveRun, replayRun)
            #expect(replay == replay.sorted() && earlier == earlier.sorted())
            #expect(replay.last.map { last in earlier.allSatisfy { $0 > last } } ?? true)
            #expect(seqs(rest) == seqs(rest).sorted() && (seqs(rest).first ?? Int.max) > (before.max() ?? 0))
            let all = replayed + rest
            #expect(seqs(all).sorted() == Array(6...255), "no envelope lost or repeated at the switch")
            let bySeq = all.sorted { (seqs([$0]).first ?? 0) < (seqs([$1]).first ?? 0) }
            #expect(bySeq == Array(sent[5...]) + liveSent, "byte-exact")
            #expect(resumed["toSeq"]?.intValue == replay.last ?? 5 || resumed["toSeq"]?.intValue == (earlier.first ?? 6) - 1)
        } else {
            #expect(replayed == Array(sent[5...]))
            #expect(resumed["toSeq"]?.intValue == 205)
        }
    }

    // MARK: Single node

    @Test func aPhoneThatDropsResumesExactlyWhatItMissedThenLiveFrames() async throws {
        try await withRelay { relay in
            let (desktop, phone) = try await RelayPairing.pair(baseURL: relay.baseURL)
            try await Self.dropAndResume(desktop: desktop, phone: phone, phoneSocketURL: nil)
            let metrics = try await relay.http.get("/metricsz", headers: [("Accept", "text/plain")]).bodyText
            // The registry is shared by the relays of this test process: the counts are at least this test's.
            func value(_ series: String) -> Double {
                metrics.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            }
            #expect(value(#"relay_history_replays_total{outcome="complete"}"#) >= 1)
            #expect(value("relay_history_frames_replayed_total") >= 200)
        }
    }

    @Test func aPhoneResumesWithTheDesktopGone() async throws {
        try await withRelay { relay in
            let (desktop, phone) = try await RelayPairing.pair(baseURL: relay.baseURL)
            try await Self.dropAndResume(desktop: desktop, phone: phone, phoneSocketURL: nil, desktopLeaves: true)
        }
    }

    @Test func pastTheHistoryLimitTheReplayIsIncomplete() async throws {
        try await withRelay({ $0["HISTORY_MAX_FRAMES"] = "50" }) { relay in
            let (desktop, phone) = try await RelayPairing.pair(baseURL: relay.baseURL)
            _ = try await desktop.sendEvent(seq: 1)
            _ = try await Self.readEnvelopes(phone.socket, count: 1)
            await phone.disconnect()
            var sent: [String] = []
            for seq in 2...101 { sent.append(try await desktop.sendEvent(seq: UInt64(seq))) }
            _ = try await phone.connect()
            try await Self.resume(phone, lastSeq: 1)
            let (replayed, resumed) = try await Self.readReplay(phone.socket)
            #expect(resumed["complete"]?.boolValue == false)
            #expect(replayed == Array(sent.suffix(50)), "what is kept is still sent")
        }
    }

    @Test func aNewSeqBelowTheLastStartsANewHistoryAndHistoryCanBeTurnedOff() async throws {
        try await withRelay { relay in
            let (desktop, phone) = try await RelayPairing.pair(baseURL: relay.baseURL)
            for seq in 1...10 { _ = try await desktop.sendEvent(seq: UInt64(seq)) }
            _ = try await Self.readEnvelopes(phone.socket, count: 10)
            await phone.disconnect()
            // The desktop restarted: its numbering begins again.
            var restarted: [String] = []
            for seq in 1...3 { restarted.append(try await desktop.sendEvent(seq: UInt64(seq))) }
            _ = try await phone.connect()
            try await Self.resume(phone, lastSeq: 10)
            let (replayed, resumed) = try await Self.readReplay(phone.socket)
            #expect(replayed.isEmpty)
            #expect(resumed["complete"]?.boolValue == false, "a phone past the newest seq holds an older epoch")
            try await Self.resume(phone, lastSeq: 0)
            let again = try await Self.readReplay(phone.socket)
            #expect(again.envelopes == restarted && again.resumed["complete"]?.boolValue == true)
        }
        try await withRelay({ $0["HISTORY_MAX_FRAMES"] = "0" }) { relay in
            let (desktop, phone) = try await RelayPairing.pair(baseURL: relay.baseURL)
            _ = try await desktop.sendEvent(seq: 1)
            try await Self.resume(phone, lastSeq: 0)
            let (_, resumed) = try await Self.readReplay(phone.socket)
            #expect(resumed.serialized == JSONValue.object([
                "type": "relay.resumed", "sessionID": .string(desktop.sessionID), "fromSeq": 1, "toSeq": 0, "complete": false,
            ]).serialized)
        }
    }

    @Test func aMalformedResumeGetsAClearErrorAndAViewPhoneMayResume() async throws {
        try await withRelay { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            let phone = RelayPhone(baseURL: relay.baseURL)
            _ = try await RelayPairing.pairConnected(desktop: desktop, phone: phone, decisionFields: ["scope": "view"])
            let sessionID = try #require(phone.sessionID)
            try await phone.socket.sendText(#"{"type":"relay.resume","sessionID":"\#(sessionID)","lastSeq":-1}"#)
            let error = try await phone.socket.nextJSON(timeout: .seconds(10))
            #expect(error["error"]?.stringValue == "invalid_resume_request")
            #expect(error["message"]?.stringValue == "lastSeq must be a non-negative integer.")
            try await phone.socket.sendText(#"{"type":"relay.resume","sessionID":"\#(sessionID)","lastSeq":0,"x":1}"#)
            #expect(try await phone.socket.nextJSON(timeout: .seconds(10))["message"]?.stringValue == "Unexpected field 'x' in resume request.")
            _ = try await desktop.sendEvent(seq: 1)
            _ = try await Self.readEnvelopes(phone.socket, count: 1)
            try await Self.resume(phone, lastSeq: 0)
            let (replayed, resumed) = try await Self.readReplay(phone.socket)
            #expect(replayed.isEmpty, "the one envelope came live after auth_ok: not sent again")
            #expect(resumed["complete"]?.boolValue == true)
        }
    }

    // MARK: Cluster

    @Test func aPhoneResumesOnAnotherNodeFromRedisAndTheHistoryGoesWithTheSession() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(1))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))
            try await Self.dropAndResume(desktop: desktop, phone: phone, phoneSocketURL: cluster.socketURL(2))

            let redis = RedisConnection(url: try RedisURL(parsing: cluster.redisURL), logger: Logger(label: "resume-test"))
            defer { Task { await redis.shutdown() } }
            #expect(await redis.waitUntilAvailable(timeout: .seconds(10)))
            let key = Array("\(cluster.keyPrefix):session:history:v1:\(desktop.sessionID)".utf8)
            #expect(try await redis.send([Array("LLEN".utf8), key]) == .integer(255))
            #expect(try await desktop.stop().status == 200)
            #expect(try await redis.send([Array("LLEN".utf8), key]) == .integer(0), "the history is deleted with the session")
        }
    }

    @Test func aPhoneResumesOnAnotherNodeWithTheDesktopGone() async throws {
        try await withRelayCluster(count: 3) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(1))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))
            try await Self.dropAndResume(desktop: desktop, phone: phone, phoneSocketURL: cluster.socketURL(2), desktopLeaves: true)
        }
    }

    /// Recording never waits for Redis: while it is down the desktop's envelopes still reach the
    /// phones that are connected, the lost writes are counted, and a phone that resumes across
    /// the hole hears `complete: false` (and still gets what was kept after it).
    @Test func historyLostToARedisOutageMakesTheResumeIncompleteAndCountsTheLoss() async throws {
        let redis = try LocalDependencyServer(.redis(appendOnly: true), executable: try TestServices.redisServer())
        try await redis.start()
        defer { redis.terminateIfRunning() }
        try await withRelayCluster(count: 2, redisURL: redis.url) { cluster in
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(0))
            let watcher = RelayPhone(baseURL: cluster.baseURL(0))
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(0), phoneSocketURL: cluster.socketURL(1))
            try await RelayPairing.addPhone(to: desktop, phone: watcher, phoneSocketURL: cluster.socketURL(1))
            for seq in 1...3 { _ = try await desktop.sendEvent(seq: UInt64(seq)) }
            _ = try await Self.readEnvelopes(phone.socket, count: 3)
            await phone.disconnect()

            try await redis.stop()
            try await eventuallyStatus(cluster.baseURL(0) + "/readyz", 503)
            // The desktop is not held up: its envelopes reach the phone still connected.
            var during: [String] = []
            for seq in 4...8 { during.append(try await desktop.sendEvent(seq: UInt64(seq))) }
            let seen = try await Self.readEnvelopes(watcher.socket, count: 8)
            #expect(Array(seen.suffix(5)) == during)

            try await redis.start()
            try await cluster.waitUntilReady(0)
            try await cluster.waitUntilReady(1)
            var after: [String] = []
            for seq in 9...10 { after.append(try await desktop.sendEvent(seq: UInt64(seq))) }
            _ = try await Self.readEnvelopes(watcher.socket, count: 2)

            // A rotation may meet the write connection still reconnecting (1011: retry), as a
            // client's backoff would.
            var connected = false
            for _ in 0..<40 where !connected {
                do {
                    _ = try await phone.connect(url: cluster.socketURL(1))
                    connected = true
                } catch {
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
            try #require(connected)
            try await Self.resume(phone, lastSeq: 3)
            let (replayed, resumed) = try await Self.readReplay(phone.socket)
            #expect(resumed["complete"]?.boolValue == false, "envelopes 4-8 were never written: \(resumed)")
            #expect(replayed == after, "what was kept after the hole is still sent")
            let metrics = try await cluster.prometheus(0)
            let failures = metrics.split(separator: "\n").first { $0.hasPrefix("relay_history_write_failures_total ") }
            #expect((failures.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0) >= 5)
        }
    }
}

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
            #expect(seqs(replayed + rest) == Array(6...255), "no envelope lost, repeated or reordered at the switch")
            #expect(replayed + rest == Array(sent[5...]) + liveSent, "byte-exact")
            #expect(resumed["toSeq"]?.intValue == seqs(replayed).last ?? 5)
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
}

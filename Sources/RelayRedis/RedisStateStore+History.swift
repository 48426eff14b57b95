// A session's desktop history in Redis, so a phone resumes on any node (extension 11).

import RelayCore

extension RedisStateStore {
    /// The LIST of a session's recorded desktop envelopes, oldest first.
    public func historyKey(_ sessionID: String) -> String { "\(keyPrefix):session:history:v1:\(sessionID)" }

    /// Always true: every node reads what the desktop's node wrote.
    public var keepsHistory: Bool { true }

    /// `RPUSH`, `LTRIM` to the newest `maxFrames`, `PEXPIRE` with the history's TTL, queued on the
    /// write connection without waiting. The byte and age limits are applied by the reader.
    public func appendHistory(
        sessionID: String, entry: HistoryEntry, limits: HistoryLimits, completion: @escaping @Sendable (Bool) -> Void
    ) {
        let key = Array(historyKey(sessionID).utf8)
        writeConnection.pipelineDetached([
            [Array("RPUSH".utf8), key, Self.encode(entry)],
            [Array("LTRIM".utf8), key, Array(String(-limits.maxFrames).utf8), Array("-1".utf8)],
            [Array("PEXPIRE".utf8), key, Array(String(max(limits.ttlMillis, 1)).utf8)],
        ]) { result in
            switch result {
            case .success(let replies): completion(!replies.contains { if case .error = $0 { true } else { false } })
            case .failure: completion(false)
            }
        }
    }

    /// `LRANGE 0 -1` of the session's history; entries that do not decode are skipped (the chain
    /// then shows the hole).
    public func history(sessionID: String) async throws -> [HistoryEntry] {
        let reply = try await connection.send([Array("LRANGE".utf8), Array(historyKey(sessionID).utf8), Array("0".utf8), Array("-1".utf8)])
            .throwingServerError()
        guard case .array(let items) = reply else { return [] }
        return items.compactMap { item in
            guard case .string(let bytes) = item else { return nil }
            return Self.decode(bytes)
        }
    }

    public func deleteHistory(sessionID: String) async throws {
        _ = try await writeConnection.send([Array("DEL".utf8), Array(historyKey(sessionID).utf8)]).throwingServerError()
    }

    /// `<seq> <previous seq or -> <recorded at ms> <frame bytes>`: the frame byte-exact after the
    /// third space.
    static func encode(_ entry: HistoryEntry) -> [UInt8] {
        var bytes = Array("\(entry.seq) \(entry.previousSeq.map(String.init) ?? "-") \(entry.recordedAtMillis) ".utf8)
        bytes.append(contentsOf: entry.frame)
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> HistoryEntry? {
        var fields: [Substring] = []
        var index = bytes.startIndex
        for _ in 0..<3 {
            guard let space = bytes[index...].firstIndex(of: UInt8(ascii: " ")) else { return nil }
            fields.append(Substring(decoding: bytes[index..<space], as: UTF8.self))
            index = space + 1
        }
        guard let seq = UInt64(fields[0]), let at = Int64(fields[2]) else { return nil }
        let previous: UInt64?
        if fields[1] == "-" { previous = nil } else {
            guard let value = UInt64(fields[1]) else { return nil }
            previous = value
        }
        return HistoryEntry(seq: seq, previousSeq: previous, recordedAtMillis: at, frame: Array(bytes[index...]))
    }
}

// The JSON log format: one object per line on stderr, for log shippers.

import Logging
import RelayCore
import RelayProtocol

#if canImport(Glibc)
import Glibc
#endif

/// One JSON object per line on stderr: `ts`, `level`, `logger`, `msg`, `event`, the message's
/// `key=value` fields, then metadata.
///
/// Every operator line starts with its event name in snake_case (`ws_auth_failure`,
/// `state_store_write_failed`), then `key=value` pairs a person can grep (README, Logs). In JSON
/// the event name is the `event` field and each pair a field of its own as well (a value runs to
/// the next `key=`, so a user agent with spaces stays whole); metadata wins over a pair of the
/// same name.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = event.message.description
        var fields: [String: JSONValue] = [
            "ts": .string(Timestamp.format(millis: wallClockMillis())), "level": .string(event.level.rawValue),
            "logger": .string(label), "msg": .string(message),
        ]
        if let (name, pairs) = Self.parse(message) {
            fields["event"] = .string(name)
            for (key, value) in pairs where fields[key] == nil { fields[key] = .string(value) }
        }
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            fields[key] = .string(value.description)
        }
        var line = Array(JSONValue.object(fields).serialized.utf8)
        line.append(10)
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// The event name a message starts with (snake_case, ended by a space, `;`, `:` or the end)
    /// and its `key=value` pairs; `nil` for a message that starts with no event name.
    static func parse(_ message: String) -> (event: String, pairs: [(String, String)])? {
        let head = message.prefix { $0 != " " && $0 != ";" && $0 != ":" }
        guard let first = head.first, first.isLowercase, head.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }),
            head.contains("_") || head.count == message.count || message.dropFirst(head.count).first == " "
        else { return nil }
        var pairs: [(String, String)] = []
        for token in message.dropFirst(head.count).split(separator: " ") {
            if let equals = token.firstIndex(of: "="), token[..<equals].allSatisfy({ $0.isLowercase || $0 == "_" }),
                equals != token.startIndex
            {
                pairs.append((String(token[..<equals]), String(token[token.index(after: equals)...])))
            } else if !pairs.isEmpty {
                pairs[pairs.count - 1].1 += " " + token
            }
        }
        return (String(head), pairs)
    }
}

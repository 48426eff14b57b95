// The JSON log format: one object per line on stderr, for log shippers.

import Logging
import RelayCore
import RelayProtocol

#if canImport(Glibc)
import Glibc
#endif

/// One JSON object per line on stderr: `ts`, `level`, `logger`, `msg`, then metadata.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: JSONValue] = [
            "ts": .string(Timestamp.format(millis: wallClockMillis())), "level": .string(event.level.rawValue),
            "logger": .string(label), "msg": .string(event.message.description),
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            fields[key] = .string(value.description)
        }
        var line = Array(JSONValue.object(fields).serialized.utf8)
        line.append(10)
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

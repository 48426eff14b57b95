import Logging
import RelayCore
import RelayProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Process-wide logging: text (swift-log's stream handler) or one JSON object per line.
public enum RelayLogging {
    /// Bootstraps swift-log once for the process.
    public static func bootstrap(level: String, format: String) {
        let logLevel = Logger.Level(rawValue: level == "warn" ? "warning" : level) ?? .info
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
    }
}

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

// The process's logging: text or JSON lines, at the configured level.

import Logging

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

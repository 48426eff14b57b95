// One log line per kind per interval, so a flood of bad envelopes cannot flood the log.

import Logging
import Synchronization

/// Lets one line per kind through per interval, so a flood of bad envelopes or failing publishes
/// cannot flood the log; the next line says how many were held back.
final class LogRateLimiter: Sendable {
    private let intervalNanoseconds: Int64
    private let state = Mutex<[String: (lastNanoseconds: Int64, suppressed: Int)]>([:])

    init(intervalSeconds: Int64 = 10) { intervalNanoseconds = intervalSeconds * 1_000_000_000 }

    /// Nil while `kind` is held back; otherwise the number of `kind` lines held back since the last.
    func admit(_ kind: String) -> Int? {
        let now = monotonicNanoseconds()
        return state.withLock { state -> Int? in
            if let entry = state[kind], now - entry.lastNanoseconds < intervalNanoseconds {
                state[kind] = (entry.lastNanoseconds, entry.suppressed + 1)
                return nil
            }
            let suppressed = state[kind]?.suppressed ?? 0
            state[kind] = (now, 0)
            return suppressed
        }
    }

    /// Logs at `level` unless `kind` was logged within the interval.
    func log(
        _ logger: Logger, _ level: Logger.Level, kind: String, _ message: @autoclosure () -> Logger.Message,
        metadata: @autoclosure () -> Logger.Metadata = [:]
    ) {
        guard logger.logLevel <= level, let suppressed = admit(kind) else { return }
        var metadata = metadata()
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.log(level: level, message(), metadata: metadata)
    }
}

// The bus's counters: swift-metrics for Prometheus, atomics for a snapshot, and a log limiter.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics
import Synchronization

/// Why a received envelope was dropped (PROTOCOL §6.5), the `reason` label of
/// `relay_nats_rejected_total`.
public enum NATSRejectionReason: String, Sendable, CaseIterable {
    /// Not an envelope: invalid JSON, a missing or mistyped field, an unknown target.
    case decode
    /// `schema_version` other than 1.
    case schema
    /// Missing, malformed or wrong signature while a secret is configured.
    case signature
    /// `source_instance_id:nonce` already seen within the window.
    case replay
    /// `issued_at_ms` missing (0) or older than the replay window.
    case stale
    /// `issued_at_ms` beyond now plus the allowed clock skew.
    case future
    /// The nonce is not an opaque token of at least 8 characters.
    case nonce
}

/// What a ``NATSClusterBus`` has counted since it was created.
public struct NATSClusterBusStatistics: Sendable, Equatable {
    /// Envelopes handed to libnats.
    public var published: Int
    /// Envelopes that could not be handed to libnats (closed connection, reconnect buffer full,
    /// too large, an invalid subject).
    public var publishFailures: Int
    /// Messages that arrived on a subscribed subject, before any check.
    public var received: Int
    /// Envelopes passed to the core's handler.
    public var delivered: Int
    /// Reconnections after a lost connection.
    public var reconnects: Int
    /// Dropped envelopes by reason (every reason present, zero or not).
    public var rejected: [NATSRejectionReason: Int]
}

extension NATSClusterBusStatistics: CustomStringConvertible {
    /// One line for logs: `published=3 publish_failures=0 … rejected=decode:1,schema:0,…`.
    public var description: String {
        let rejections = NATSRejectionReason.allCases.map { "\($0.rawValue):\(rejected[$0] ?? 0)" }.joined(separator: ",")
        return "published=\(published) publish_failures=\(publishFailures) received=\(received) delivered=\(delivered) "
            + "reconnects=\(reconnects) rejected=\(rejections)"
    }
}

/// Counters created once per bus, recorded from the publish thread and libnats's threads.
final class NATSBusMetrics: Sendable {
    private let publishedCount = Atomic<Int>(0)
    private let publishFailureCount = Atomic<Int>(0)
    private let receivedCount = Atomic<Int>(0)
    private let deliveredCount = Atomic<Int>(0)
    private let reconnectCount = Atomic<Int>(0)
    private let rejectedCounts = Mutex<[NATSRejectionReason: Int]>([:])

    private let publishedCounter = Counter(label: "relay_nats_published_total")
    private let publishFailuresCounter = Counter(label: "relay_nats_publish_failures_total")
    private let receivedCounter = Counter(label: "relay_nats_received_total")
    private let reconnectsCounter = Counter(label: "relay_nats_reconnects_total")
    private let rejectedCounters: [NATSRejectionReason: Counter]
    private let deliveryTimer = Metrics.Timer(label: "relay_cross_node_delivery_seconds")

    init() {
        var counters: [NATSRejectionReason: Counter] = [:]
        for reason in NATSRejectionReason.allCases {
            counters[reason] = Counter(label: "relay_nats_rejected_total", dimensions: [("reason", reason.rawValue)])
        }
        rejectedCounters = counters
    }

    func published() {
        publishedCount.add(1, ordering: .relaxed)
        publishedCounter.increment()
    }

    func publishFailed() {
        publishFailureCount.add(1, ordering: .relaxed)
        publishFailuresCounter.increment()
    }

    func received() {
        receivedCount.add(1, ordering: .relaxed)
        receivedCounter.increment()
    }

    func reconnected() {
        reconnectCount.add(1, ordering: .relaxed)
        reconnectsCounter.increment()
    }

    func rejected(_ reason: NATSRejectionReason) {
        rejectedCounts.withLock { $0[reason, default: 0] += 1 }
        rejectedCounters[reason]?.increment()
    }

    /// Counts a delivery; for session traffic also its age since the publisher stamped it.
    func delivered(sessionTraffic: Bool, issuedAtMillis: Int64, now: Int64) {
        deliveredCount.add(1, ordering: .relaxed)
        if sessionTraffic, issuedAtMillis > 0, now >= issuedAtMillis {
            deliveryTimer.recordNanoseconds((now - issuedAtMillis) * 1_000_000)
        }
    }

    var snapshot: NATSClusterBusStatistics {
        var rejected = rejectedCounts.withLock { $0 }
        for reason in NATSRejectionReason.allCases where rejected[reason] == nil { rejected[reason] = 0 }
        return NATSClusterBusStatistics(
            published: publishedCount.load(ordering: .relaxed),
            publishFailures: publishFailureCount.load(ordering: .relaxed),
            received: receivedCount.load(ordering: .relaxed),
            delivered: deliveredCount.load(ordering: .relaxed),
            reconnects: reconnectCount.load(ordering: .relaxed),
            rejected: rejected)
    }
}

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

/// Nanoseconds on the monotonic clock (immune to wall-clock steps).
func monotonicNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

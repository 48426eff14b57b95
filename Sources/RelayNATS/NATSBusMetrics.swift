// The bus's counters: swift-metrics for Prometheus, atomics for a snapshot.

import Metrics
import Synchronization

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

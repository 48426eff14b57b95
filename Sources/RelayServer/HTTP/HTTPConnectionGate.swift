// The node's cap on connections not yet admitted (MAX_HTTP_CONNECTIONS), and refusal counters.

import CoreMetrics
import Metrics
import Synchronization

/// The node's count of connections that are open and not yet admitted (HTTP, or a WebSocket
/// before it authenticates), against `MAX_HTTP_CONNECTIONS`, and the counters of every refusal
/// and timeout.
final class HTTPConnectionGate: Sendable {
    private let open = Atomic<Int>(0)
    private let limit: Int
    private let openGauge = Gauge(label: "relay_http_open_connections")
    private let limitGauge = Gauge(label: "relay_http_open_connections_limit")
    private let rejections: [Counter]

    init(limit: Int) {
        self.limit = limit
        // Every reason up front, so an alert has a series before the first refusal.
        rejections = HTTPRejection.allCases.map { Counter(label: "relay_http_rejections_total", dimensions: [("reason", $0.rawValue)]) }
        openGauge.record(0)
        limitGauge.record(limit)
    }

    /// Admits one more connection, or counts a `connection_limit` refusal and returns false.
    func tryOpen() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged {
                openGauge.record(current + 1)
                return true
            }
            current = original
        }
        count(.connectionLimit)
        return false
    }

    /// A connection admitted by ``tryOpen()`` closed, or its WebSocket authenticated.
    func release() {
        let now = open.subtract(1, ordering: .relaxed).newValue
        openGauge.record(now)
    }

    /// Open HTTP connections now.
    var openConnections: Int { open.load(ordering: .relaxed) }

    /// Counts one refusal or timeout.
    func count(_ reason: HTTPRejection) {
        rejections[HTTPRejection.allCases.firstIndex(of: reason)!].increment()
    }
}

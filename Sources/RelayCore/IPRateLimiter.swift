import Synchronization

/// The per-client-IP fixed-window budget shared by the six POST endpoints (PROTOCOL §2.4).
final class IPRateLimiter: Sendable {
    private let buckets = Mutex<[String: RateWindow]>([:])

    /// Counts one request from `ip`; false when it is over `limit` in the current window.
    func consume(ip: String, limit: Int, now: Int64) -> Bool {
        buckets.withLock { buckets in
            var window = buckets[ip] ?? RateWindow(startingAt: now)
            let allowed = window.consume(limit: limit, now: now)
            buckets[ip] = window
            return allowed
        }
    }

    var count: Int { buckets.withLock { $0.count } }

    func prune(now: Int64) {
        buckets.withLock { buckets in
            buckets = buckets.filter { !$0.value.isExpired(now: now) }
        }
    }
}

// The per-client-IP fixed-window budgets: the POST endpoints' and the WebSocket auth failures'.

import Synchronization

/// A per-client-IP fixed-window budget: the one the six POST endpoints share (PROTOCOL §2.4), and
/// the WebSocket auth-failure budget.
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

    /// True when `ip` has already used `limit` hits in its current window (nothing is counted).
    func isExhausted(ip: String, limit: Int, now: Int64) -> Bool {
        buckets.withLock { buckets in
            guard let window = buckets[ip], !window.isExpired(now: now) else { return false }
            return window.count >= limit
        }
    }

    var count: Int { buckets.withLock { $0.count } }

    func prune(now: Int64) {
        buckets.withLock { buckets in
            buckets = buckets.filter { !$0.value.isExpired(now: now) }
        }
    }
}

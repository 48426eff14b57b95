// The Redis connection's metric handles: command durations, errors by kind, reconnects.

import Metrics

/// The connection's metric handles, created once.
struct RedisMetrics: Sendable {
    let commandDuration = Metrics.Timer(label: "relay_redis_command_duration_seconds")
    let connectionErrors = Counter(label: "relay_redis_errors_total", dimensions: [("kind", "connection")])
    let timeoutErrors = Counter(label: "relay_redis_errors_total", dimensions: [("kind", "timeout")])
    let serverErrors = Counter(label: "relay_redis_errors_total", dimensions: [("kind", "server")])
    let unavailableErrors = Counter(label: "relay_redis_errors_total", dimensions: [("kind", "unavailable")])
    let reconnects = Counter(label: "relay_redis_reconnects_total")
}

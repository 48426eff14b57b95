// /metricsz and /healthz: the reference JSON (PROTOCOL §7) and the Prometheus exposition.

import CoreMetrics
import Metrics
import Prometheus
import RelayCore
import RelayProtocol

/// `/metricsz` and `/healthz`: the reference JSON (PROTOCOL §7) and the Prometheus exposition.
final class MetricsExporter: Sendable {
    let relay: Relay
    let health: HealthState
    private let registry = RelayMetricsSystem.registry
    private let gauges: [String: CoreMetrics.Gauge]
    /// `relay_dependency_up{dependency}`: 1 while Redis / NATS answer, one series per configured one.
    private let dependencyGauges: [String: CoreMetrics.Gauge]
    /// `relay_build_info{version,revision,swift_version}`, always 1.
    private let buildInfo = CoreMetrics.Gauge(
        label: "relay_build_info",
        dimensions: [("version", BuildInfo.version), ("revision", BuildInfo.revision), ("swift_version", BuildInfo.swiftVersion)])

    private static let gaugeNames = [
        "relay_sessions", "relay_sessions_with_desktop", "relay_sessions_with_mobile", "relay_active_websockets",
        "relay_active_websockets_limit", "relay_pending_join_waiters", "relay_pending_join_waiters_limit",
        "relay_device_tokens", "relay_rate_limit_buckets", "relay_bus_subscriptions", "relay_ready", "relay_draining",
        "relay_history_frames", "relay_history_bytes",
    ]

    init(relay: Relay, health: HealthState) {
        self.relay = relay
        self.health = health
        var gauges: [String: CoreMetrics.Gauge] = [:]
        for name in Self.gaugeNames { gauges[name] = CoreMetrics.Gauge(label: name) }
        self.gauges = gauges
        var dependencyGauges: [String: CoreMetrics.Gauge] = [:]
        for (name, _) in health.dependencies() {
            dependencyGauges[name] = CoreMetrics.Gauge(label: "relay_dependency_up", dimensions: [("dependency", name)])
        }
        self.dependencyGauges = dependencyGauges
        buildInfo.record(1)
    }

    /// The Prometheus text exposition, with the gauges refreshed first, every family's HELP line
    /// (``MetricCatalog``) and the `process_*` families.
    func prometheusText() -> [UInt8] {
        let s = relay.snapshot()
        let values: [String: Int] = [
            "relay_sessions": s.sessions, "relay_sessions_with_desktop": s.sessionsWithDesktop,
            "relay_sessions_with_mobile": s.sessionsWithMobile, "relay_active_websockets": s.activeWebSockets,
            "relay_active_websockets_limit": relay.configuration.maxActiveWebSockets,
            "relay_pending_join_waiters": s.pendingJoinWaiters,
            "relay_pending_join_waiters_limit": relay.configuration.maxPendingJoinWaiters,
            "relay_device_tokens": s.deviceTokens, "relay_rate_limit_buckets": s.rateLimitBuckets,
            "relay_bus_subscriptions": s.busSubscriptions, "relay_ready": health.readiness().ready ? 1 : 0,
            "relay_draining": health.isDraining ? 1 : 0,
            "relay_history_frames": relay.stats.historyRetained.frames, "relay_history_bytes": relay.stats.historyRetained.bytes,
        ]
        for (name, value) in values { gauges[name]?.record(value) }
        for (name, up) in health.dependencies() { dependencyGauges[name]?.record(up ? 1 : 0) }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16_384)
        registry.emit(into: &buffer)
        buffer = MetricCatalog.annotate(buffer)
        buffer.append(contentsOf: ProcessMetrics.exposition().utf8)
        return buffer
    }

    /// `GET /metricsz` JSON, keys in the reference order.
    func metricsJSON() -> [UInt8] {
        let s = relay.snapshot()
        var w = JSONObjectWriter()
        w.bool("ok", true)
        w.int("sessions", s.sessions)
        w.int("sessionsWithDesktop", s.sessionsWithDesktop)
        w.int("sessionsWithMobile", s.sessionsWithMobile)
        w.int("activeWebSockets", s.activeWebSockets)
        w.int("pendingJoinWaiters", s.pendingJoinWaiters)
        w.int("deviceTokens", s.deviceTokens)
        w.int("rateLimitBuckets", s.rateLimitBuckets)
        w.int("commandRateLimitBuckets", s.commandRateLimitBuckets)
        w.int("snapshotRateLimitBuckets", s.snapshotRateLimitBuckets)
        w.int("busSubscriptions", s.busSubscriptions)
        w.int("outboundSendFailures", s.outboundSendFailures)
        w.int("slowConsumerDisconnects", s.slowConsumerDisconnects)
        w.int("pairStartRequests", s.pairStartRequests)
        w.int("pairStartSuccesses", s.pairStartSuccesses)
        w.int("pairStartFailures", s.pairStartRequests - s.pairStartSuccesses)
        w.int("pairJoinRequests", s.pairJoinRequests)
        w.int("pairJoinSuccesses", s.pairJoinSuccesses)
        w.int("pairJoinFailures", s.pairJoinRequests - s.pairJoinSuccesses)
        w.int("pairRefreshRequests", s.pairRefreshRequests)
        w.int("pairRefreshSuccesses", s.pairRefreshSuccesses)
        w.int("pairRefreshFailures", s.pairRefreshRequests - s.pairRefreshSuccesses)
        w.int("wsAuthAttempts", s.wsAuthAttempts)
        w.int("wsAuthSuccesses", s.wsAuthSuccesses)
        w.int("wsAuthFailures", s.wsAuthAttempts - s.wsAuthSuccesses)
        w.raw("wsAuthFailureReasons", JSONValue.object(Dictionary(uniqueKeysWithValues: s.wsAuthFailureReasons.map {
            ($0.0.rawValue, JSONValue.number(JSONNumber($0.1)))
        })).serialized)
        w.bool("crossInstanceBusEnabled", s.crossInstanceBusEnabled)
        w.bool("redisPersistenceEnabled", s.redisPersistenceEnabled)
        w.string("now", Timestamp.format(millis: wallClockMillis()))
        return w.finish()
    }

    /// `GET /healthz` JSON, keys in the reference order.
    func healthJSON() -> [UInt8] {
        let s = relay.snapshot()
        var w = JSONObjectWriter()
        w.bool("ok", true)
        w.int("sessions", s.sessions)
        w.int("activeWebSockets", s.activeWebSockets)
        w.int("pendingJoinWaiters", s.pendingJoinWaiters)
        w.int("deviceTokens", s.deviceTokens)
        w.int("busSubscriptions", s.busSubscriptions)
        w.bool("crossInstanceBusEnabled", s.crossInstanceBusEnabled)
        w.bool("redisPersistenceEnabled", s.redisPersistenceEnabled)
        w.string("now", Timestamp.format(millis: wallClockMillis()))
        return w.finish()
    }
}

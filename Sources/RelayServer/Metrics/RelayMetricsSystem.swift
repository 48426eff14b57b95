// The process-wide Prometheus registry behind swift-metrics, with the relay's histogram buckets.

import Metrics
import Prometheus

/// The process-wide Prometheus registry behind swift-metrics. Bootstrapped once per process;
/// every relay in the process records into it.
enum RelayMetricsSystem {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        // HTTP latency covers the /pair/join long-poll (up to PAIR_APPROVAL_TIMEOUT_MS, 45 s).
        factory.durationHistogramBuckets["relay_http_request_duration_seconds"] =
            factory.defaultDurationHistogramBuckets + [.seconds(20), .seconds(30), .seconds(45), .seconds(60)]
        factory.durationHistogramBuckets["relay_pair_approval_wait_seconds"] = [
            .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
            .seconds(20), .seconds(30), .seconds(45), .seconds(60),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }()
}

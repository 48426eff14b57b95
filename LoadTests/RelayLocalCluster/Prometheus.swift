// Reading one sample out of the relay's Prometheus text exposition.

/// The value of the sample `series` in a Prometheus text exposition (such as `prometheus(_:)`
/// returns), 0 when it is absent.
///
/// - Parameter series: the metric name with its labels exactly as the relay writes them, such as
///   `relay_nats_rejected_total{reason="signature"}` or `relay_sockets_open`.
package func prometheusSampleValue(_ exposition: String, _ series: String) -> Double {
    for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
        let value = line.dropFirst(series.count + 1).drop { $0 == " " || $0 == "\t" }
        return Double(value.prefix { $0 != " " && $0 != "\t" && $0 != "\r" }) ?? 0
    }
    return 0
}

/// The sum of every sample of `metric` whatever its labels (`relay_ws_auth_failures_total` adds up
/// all reasons), 0 when there is none. Histogram series (`_bucket`, `_sum`, `_count`) are other
/// names and are not included.
package func prometheusSum(_ exposition: String, _ metric: String) -> Double {
    var total = 0.0
    for line in exposition.split(separator: "\n") where line.hasPrefix(metric) {
        let rest = line.dropFirst(metric.count)
        guard rest.first == " " || rest.first == "{" else { continue }
        let value = rest.split(separator: " ").last.flatMap { Double($0) } ?? 0
        total += value
    }
    return total
}

// Latency samples, percentiles (PROTOCOL §9.1's rule) and the per-second timeline of the reports.

import Foundation
import RelayTestClient
import Synchronization

/// Percentiles of a set of latency samples, in microseconds.
package struct LatencySummary: Sendable, Equatable {
    package let count: Int
    package let p50: Int
    package let p90: Int
    package let p95: Int
    package let p99: Int
    package let p999: Int
    package let max: Int
    package let mean: Double

    /// Summarises `samples` (µs): the percentile `p` is the sorted sample at index `round((n−1)×p)`
    /// (§9.1). No samples → every field 0.
    package init(samples: [Int]) {
        let sorted = samples.sorted()
        count = sorted.count
        func at(_ p: Double) -> Int {
            guard !sorted.isEmpty else { return 0 }
            return sorted[Int((Double(sorted.count - 1) * p).rounded())]
        }
        p50 = at(0.50)
        p90 = at(0.90)
        p95 = at(0.95)
        p99 = at(0.99)
        p999 = at(0.999)
        max = sorted.last ?? 0
        mean = sorted.isEmpty ? 0 : Double(sorted.reduce(0, +)) / Double(sorted.count)
    }

    /// §9.1's millisecond form: the ceiling of µs / 1000.
    package static func milliseconds(_ micros: Int) -> Int { (micros + 999) / 1000 }
}

/// One second of a run (seconds since the run began) and its latencies in µs.
package struct LatencyBucket: Sendable, Equatable {
    package let second: Int
    package let count: Int
    package let p50: Int
    package let p95: Int
    package let p99: Int
    package let max: Int

    package init(second: Int, count: Int, p50: Int, p95: Int, p99: Int, max: Int) {
        (self.second, self.count, self.p50, self.p95, self.p99, self.max) = (second, count, p50, p95, p99, max)
    }

    init(second: Int, summary: LatencySummary) {
        self.init(second: second, count: summary.count, p50: summary.p50, p95: summary.p95, p99: summary.p99, max: summary.max)
    }

    /// `{"second":…,"count":…,"p50_us":…,"p95_us":…,"p99_us":…,"max_us":…}` for artifacts.
    package var json: ArtifactJSON {
        .object([
            ("second", .int(second)), ("count", .int(count)), ("p50_us", .int(p50)),
            ("p95_us", .int(p95)), ("p99_us", .int(p99)), ("max_us", .int(max)),
        ])
    }

    /// Reads a bucket written by ``json``; `nil` when a field is missing.
    package init?(json: JSONValue) {
        guard let second = json["second"]?.intValue, let count = json["count"]?.intValue,
            let p50 = json["p50_us"]?.intValue, let p95 = json["p95_us"]?.intValue,
            let p99 = json["p99_us"]?.intValue, let max = json["max_us"]?.intValue
        else { return nil }
        self.init(second: second, count: count, p50: p50, p95: p95, p99: p99, max: max)
    }

    /// Shifts the bucket `seconds` later (to lay several runs end to end on one chart).
    package func shifted(by seconds: Int) -> LatencyBucket {
        LatencyBucket(second: second + seconds, count: count, p50: p50, p95: p95, p99: p99, max: max)
    }
}

/// Thread-safe collector of timed samples.
package final class LatencyRecorder: Sendable {
    private struct Sample { let offset: Duration; let micros: Int }
    private let started: ContinuousClock.Instant
    private let samples = Mutex<[Sample]>([])

    /// Starts the run's clock.
    package init(started: ContinuousClock.Instant = .now) { self.started = started }

    /// Records one latency, measured at `now`; sub-microsecond results count as 1 µs (§9.1).
    package func record(_ latency: Duration, at now: ContinuousClock.Instant = .now) {
        let sample = Sample(offset: now - started, micros: Swift.max(1, latency.microseconds))
        samples.withLock { $0.append(sample) }
    }

    /// Samples so far.
    package var count: Int { samples.withLock { $0.count } }

    /// All latencies so far, in µs, in recording order.
    package var micros: [Int] { samples.withLock { $0.map(\.micros) } }

    /// Percentiles of every sample so far.
    package var summary: LatencySummary { LatencySummary(samples: micros) }

    /// Percentiles of the samples recorded since `offset` seconds into the run.
    package func summary(since offset: Duration) -> LatencySummary {
        LatencySummary(samples: samples.withLock { $0.filter { $0.offset >= offset }.map(\.micros) })
    }

    /// One bucket per second that has samples, in order.
    package var timeline: [LatencyBucket] {
        let grouped = Dictionary(grouping: samples.withLock { $0 }) { Int($0.offset.components.seconds) }
        return grouped.keys.sorted().map { LatencyBucket(second: $0, summary: LatencySummary(samples: grouped[$0]!.map(\.micros))) }
    }
}

extension Duration {
    /// Whole microseconds (truncated).
    package var microseconds: Int {
        Int(components.seconds) * 1_000_000 + Int(components.attoseconds / 1_000_000_000_000)
    }

    /// Seconds as a `Double`.
    package var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// The middle value (the upper one of an even count); nil for no values.
func median<Value: Comparable>(_ values: [Value]) -> Value? {
    values.isEmpty ? nil : values.sorted()[values.count / 2]
}

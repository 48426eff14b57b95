// The load result artifact of PROTOCOL §9.1, field for field, plus what every mode adds after it.

/// The relay's own backpressure and auth counters, read from `GET /metricsz` (JSON) after a run.
package struct RelayCounters: Sendable, Equatable {
    package var outboundSendFailures = 0
    package var slowConsumerDisconnects = 0
    package var wsAuthFailures = 0

    package init(outboundSendFailures: Int = 0, slowConsumerDisconnects: Int = 0, wsAuthFailures: Int = 0) {
        self.outboundSendFailures = outboundSendFailures
        self.slowConsumerDisconnects = slowConsumerDisconnects
        self.wsAuthFailures = wsAuthFailures
    }
}

/// One run's result in the §9.1 shape. Every mode of the harness writes one; the §9.1 fields come
/// first, in the reference order, so release tooling reads them unchanged, and the mode's own
/// figures follow.
package struct LoadResult: Sendable {
    /// `ok` when no session task failed (budgets are carried by the `passes_*` flags), else
    /// `task_failures`.
    package var status: String { errors.isEmpty ? "ok" : "task_failures" }
    package var baseURL: String
    package var origin: String
    package var sessions: Int
    package var messagesPerSession: Int
    package var latency: LatencySummary
    package var p95BudgetMilliseconds: Int
    package var counters: RelayCounters
    /// Failures of session tasks; the first is reported as `first_error`.
    package var errors: [String]
    /// The harness mode (`load`, `throughput`, …).
    package var mode: String
    package var usage: RunUsage?
    /// Mode-specific members, written after the common ones.
    package var extra: [(String, ArtifactJSON)]
    package var timeline: [LatencyBucket]

    package init(
        mode: String, baseURL: String, origin: String, sessions: Int, messagesPerSession: Int,
        latency: LatencySummary, p95BudgetMilliseconds: Int, counters: RelayCounters = RelayCounters(),
        errors: [String] = [], usage: RunUsage? = nil, extra: [(String, ArtifactJSON)] = [], timeline: [LatencyBucket] = []
    ) {
        self.mode = mode
        self.baseURL = baseURL
        self.origin = origin
        self.sessions = sessions
        self.messagesPerSession = messagesPerSession
        self.latency = latency
        self.p95BudgetMilliseconds = p95BudgetMilliseconds
        self.counters = counters
        self.errors = errors
        self.usage = usage
        self.extra = extra
        self.timeline = timeline
    }

    package var passesLatencyBudget: Bool {
        errors.isEmpty && LatencySummary.milliseconds(latency.p95) <= p95BudgetMilliseconds
    }
    package var passesBackpressureBudget: Bool {
        errors.isEmpty && counters.outboundSendFailures == 0 && counters.slowConsumerDisconnects == 0
    }
    package var passesAuthBudget: Bool { errors.isEmpty && counters.wsAuthFailures == 0 }

    /// The artifact. On task failures the sample count, latencies and counters are written as 0
    /// and the flags false, as §9.1 says.
    package var json: ArtifactJSON {
        let failed = !errors.isEmpty
        let summary = failed ? LatencySummary(samples: []) : latency
        let counters = failed ? RelayCounters() : counters
        var members: [(String, ArtifactJSON)] = [
            ("status", .string(status)),
            ("base_url", .string(baseURL)),
            ("origin", .string(origin)),
            ("sessions", .int(sessions)),
            ("messages_per_session", .int(messagesPerSession)),
            ("sample_count", .int(summary.count)),
            ("p50_latency_us", .int(summary.p50)),
            ("p95_latency_us", .int(summary.p95)),
            ("p99_latency_us", .int(summary.p99)),
            ("max_latency_us", .int(summary.max)),
            ("p50_latency_ms", .int(LatencySummary.milliseconds(summary.p50))),
            ("p95_latency_ms", .int(LatencySummary.milliseconds(summary.p95))),
            ("p99_latency_ms", .int(LatencySummary.milliseconds(summary.p99))),
            ("max_latency_ms", .int(LatencySummary.milliseconds(summary.max))),
            ("p95_latency_budget_ms", .int(p95BudgetMilliseconds)),
            ("passes_latency_budget", .bool(passesLatencyBudget)),
            ("outbound_send_failures", .int(counters.outboundSendFailures)),
            ("slow_consumer_disconnects", .int(counters.slowConsumerDisconnects)),
            ("ws_auth_failures", .int(counters.wsAuthFailures)),
            ("passes_backpressure_budget", .bool(passesBackpressureBudget)),
            ("passes_auth_budget", .bool(passesAuthBudget)),
            ("error_count", .int(errors.count)),
            ("first_error", .string(errors.first)),
            // Ours, after the reference fields.
            ("mode", .string(mode)),
            ("p90_latency_us", .int(summary.p90)),
            ("p999_latency_us", .int(summary.p999)),
            ("mean_latency_us", .number(summary.mean, places: 1)),
        ]
        members += usage?.members ?? []
        members += extra
        members.append(("latency_timeline", .array(timeline.map(\.json))))
        return .object(members)
    }
}

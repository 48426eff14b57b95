import RelayLocalCluster
import RelayTestSupport

/// Runs `body` with `count` relay nodes against `redisURL` and `natsURL` (default: the suite's
/// servers), ready, under a key and subject prefix of their own; kills every node afterwards,
/// whatever happens.
func withRelayCluster(
    count: Int, redisURL: String? = nil, natsURL: String? = nil, environment: [String: String] = [:],
    _ body: (LocalCluster) async throws -> Void
) async throws {
    let cluster = try await LocalCluster.start(
        nodes: count, redis: .external(url: try redisURL ?? TestServices.redisURL()),
        nats: .external(url: try natsURL ?? TestServices.natsURL()),
        environment: ["ALLOWED_ORIGINS": allowedOrigin, "DRAIN_PERIOD_MS": "300"].merging(environment) { $1 },
        prefix: "relaytest")
    defer { cluster.killAll() }
    try await body(cluster)
}

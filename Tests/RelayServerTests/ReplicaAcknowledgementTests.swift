import Foundation
import Logging
import RelayTestClient
import RelayLocalCluster
import RelayRedis
import RelayTestSupport
import Testing

/// `REDIS_MIN_REPLICAS_ACK`: a durable change is acknowledged to a client only once that many
/// replicas confirmed it. A real master and replica on loopback.
@Suite("Replica acknowledgement", .serialized, .timeLimit(.minutes(2)))
struct ReplicaAcknowledgementTests {
    @Test func changesAreAcknowledgedOnlyWhileAReplicaConfirmsThem() async throws {
        let executable = try TestServices.redisServer()
        let master = try LocalDependencyServer(.redis(appendOnly: false), executable: executable)
        try await master.start()
        defer { master.terminateIfRunning() }
        let replica = try LocalDependencyServer(
            .redis(appendOnly: false), executable: executable, arguments: ["--replicaof", "127.0.0.1", "\(master.port)"])
        try await replica.start()
        defer { replica.terminateIfRunning() }
        let raw = RedisConnection(url: try RedisURL(parsing: master.url), logger: Logger(label: "replica-ack-test"))
        defer { Task { await raw.shutdown() } }
        let online = await eventually(timeout: .seconds(30)) {
            (try? await raw.send("INFO", "replication").text)?.contains("state=online") == true
        }
        #expect(online)

        try await withRelay({
            $0["REDIS_URL"] = master.url
            $0["REDIS_MIN_REPLICAS_ACK"] = "1"
            // Long enough for a replica on a busy machine; refusals below wait this long each.
            $0["REDIS_WAIT_TIMEOUT_MS"] = "3000"
        }) { relay in
            // Confirmed by the replica: a whole pairing works.
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL, origin: allowedOrigin)
            #expect(paired.phoneAuthOK["type"]?.stringValue == "auth_ok")

            // No replica: the change is applied on the master but not acknowledged.
            try await replica.stop(graceful: false)
            let refused = await eventually(timeout: .seconds(30)) {
                (try? await RelayDesktop(baseURL: relay.baseURL).startPairing().status) == 503
            }
            #expect(refused)
            let answer = try await RelayDesktop(baseURL: relay.baseURL).startPairing()
            #expect(answer.errorCode == "state_store_unavailable")
            // The node is still ready, and says why it refused.
            #expect(try await RelayHTTPClient(baseURL: relay.baseURL).get("/readyz").status == 200)
            let metrics = try await relay.prometheusText()
            #expect(metrics.contains("relay_redis_replication_shortfalls_total"))
            await paired.phone.disconnect()
            await paired.desktop.disconnect()
        }
    }
}

import Foundation
import RelayTestClient
import RelayLocalCluster
import RelayTestSupport
import Testing

/// No secret at any log level: a node started with a secret in every secret-bearing variable, at
/// `LOG_LEVEL=trace`, through a whole pairing and a shutdown, prints none of them, nor a token.
@Suite("Secrets in logs", .serialized, .timeLimit(.minutes(2)))
struct SecretLoggingTests {
    @Test(arguments: ["text", "json"])
    func aTraceLevelRunPrintsNoSecretAndNoToken(format: String) async throws {
        let redisPassword = "redis-pw-" + opaque(16)
        let natsPassword = "nats-pw-" + opaque(16)
        let hmacSecret = "hmac-secret-" + opaque(32)
        let previousSecret = "hmac-previous-" + opaque(32)
        let redis = try LocalDependencyServer(
            .redis(appendOnly: false), executable: try TestServices.redisServer(), arguments: ["--requirepass", redisPassword])
        let nats = try LocalDependencyServer(
            .nats, executable: try TestServices.natsServer(), arguments: ["--user", "bus-user", "--pass", natsPassword])
        try await redis.start()
        defer { redis.terminateIfRunning() }
        try await nats.start()
        defer { nats.terminateIfRunning() }

        let node = try LocalRelayNode.launch(
            port: try freeLoopbackPort(),
            environment: [
                "LOG_LEVEL": "trace", "LOG_FORMAT": format,
                "REDIS_URL": "redis://:\(redisPassword)@127.0.0.1:\(redis.port)",
                "NATS_URL": "nats://bus-user:\(natsPassword)@127.0.0.1:\(nats.port)",
                "NATS_HMAC_SECRET": hmacSecret, "NATS_HMAC_PREVIOUS_SECRET": previousSecret,
                "ALLOWED_ORIGINS": "http://localhost:4173",
            ])
        try await node.waitUntilReady()
        let paired = try await RelayPairing.pairConnected(baseURL: node.baseURL)
        let tokens = [paired.desktop.desktopSessionToken, paired.desktop.joinToken] + [paired.phone.deviceSessionToken].compactMap { $0 }
        try await paired.phone.socket.close()
        try await paired.desktop.socket.close()
        _ = try await node.stop()

        let output = node.logs
        #expect(output.contains("listening"), "the run logged nothing: \(output.prefix(300))")
        for (name, secret) in [
            ("REDIS_URL password", redisPassword), ("NATS_URL password", natsPassword), ("NATS_HMAC_SECRET", hmacSecret),
            ("NATS_HMAC_PREVIOUS_SECRET", previousSecret),
        ] + tokens.map({ ("a token", $0) }) {
            #expect(!output.contains(secret), "\(name) appears in the \(format) log")
        }
    }
}

import Foundation
import Logging
import RelayTestClient
import RelayLocalCluster
import RelayRedis
import RelayTestSupport
import Testing

/// A Redis that accepts only TLS, reached as the `redis-tls-sidecar` component does it: the relay
/// talks plain Redis to a local stunnel in client mode, which verifies the server's certificate
/// against the CA and carries the traffic over TLS. Certificates are made here with openssl.
@Suite("Redis over a TLS sidecar", .serialized, .timeLimit(.minutes(2)))
struct RedisTLSSidecarTests {
    @Test func theRelayPairsThroughStunnelToATLSOnlyRedis() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let directory = certificates.directory
        _ = try await certificates.makeServerCertificate()

        // Redis with TLS only: no plain port.
        let tlsPort = try freeLoopbackPort()
        let redis = try ChildProcess.launch(
            executable: try TestServices.redisServer(),
            arguments: [
                "--bind", "127.0.0.1", "--port", "0", "--tls-port", "\(tlsPort)", "--dir", directory, "--save", "",
                "--tls-cert-file", "\(directory)/server.crt", "--tls-key-file", "\(directory)/server.key",
                "--tls-ca-cert-file", "\(directory)/ca.crt", "--tls-auth-clients", "no",
            ],
            environment: nil)
        defer { redis.terminateIfRunning() }
        try await waitUntilAccepting(port: tlsPort, timeout: .seconds(30), process: redis)

        // Plain Redis to the TLS port gets no answer.
        let plain = RedisConnection(url: try RedisURL(parsing: "redis://127.0.0.1:\(tlsPort)"), logger: Logger(label: "tls-plain"))
        _ = await plain.waitUntilAvailable(timeout: .seconds(10))
        await #expect(throws: RedisError.self) { try await plain.send("PING").throwingServerError() }
        await plain.shutdown()

        // The sidecar: plain on a loopback port, TLS to Redis, the certificate checked.
        let sidecarPort = try freeLoopbackPort(excluding: [tlsPort])
        let configuration = """
            foreground = yes
            pid =
            [redis]
            client = yes
            accept = 127.0.0.1:\(sidecarPort)
            connect = 127.0.0.1:\(tlsPort)
            CAfile = \(directory)/ca.crt
            verifyChain = yes
            checkIP = 127.0.0.1

            """
        try configuration.write(toFile: "\(directory)/stunnel.conf", atomically: true, encoding: .utf8)
        let stunnelPath = try (try? LocalDependencyServer.findExecutable("stunnel4")) ?? LocalDependencyServer.findExecutable("stunnel")
        let stunnel = try ChildProcess.launch(executable: stunnelPath, arguments: ["\(directory)/stunnel.conf"], environment: nil)
        defer { stunnel.terminateIfRunning() }
        try await waitUntilAccepting(port: sidecarPort, timeout: .seconds(30), process: stunnel)

        try await withRelay({ $0["REDIS_URL"] = "redis://127.0.0.1:\(sidecarPort)" }) { relay in
            let ready = await eventually(timeout: .seconds(30)) {
                (try? await RelayHTTPClient(baseURL: relay.baseURL).get("/readyz").status) == 200
            }
            #expect(ready, "the relay never reached Redis through the sidecar")
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL, origin: allowedOrigin)
            _ = try await paired.phone.sendCommand(name: "thread.select", fields: ["threadID": "t1"])
            let command = try await ClusterTruthTests.frame(on: paired.desktop.socket) { $0["payload"]?["type"]?.stringValue == "command" }
            #expect(command["seq"]?.intValue == 1)

            // The session is in the TLS-only Redis (read back through the tunnel).
            let raw = RedisConnection(url: try RedisURL(parsing: "redis://127.0.0.1:\(sidecarPort)"), logger: Logger(label: "tls-raw"))
            #expect(await raw.waitUntilAvailable(timeout: .seconds(10)))
            let keys = try await raw.send("KEYS", "*session:v1:\(paired.desktop.sessionID)").array ?? []
            #expect(keys.count == 1)
            await raw.shutdown()
            await paired.phone.disconnect()
            await paired.desktop.disconnect()
        }
    }
}

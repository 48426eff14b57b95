import Foundation
import Synchronization
import RelayTestClient
import RelayCore
import RelayServer
import RelayLocalCluster
import RelayTestSupport
import Testing

/// PROTOCOL §5 and DECISIONS 1: sweeping, graceful drain, and the process's start and stop.
@Suite("Lifecycle", .timeLimit(.minutes(2)))
struct LifecycleTests {
    /// Runs one sweep of `relay`'s sweeper by moving `clock` a sweep interval forward; returns once
    /// the sweep is over (the sweeper is asleep on the clock again).
    static func sweep(_ clock: ManualClock, advancingBy millis: Int64) async throws {
        try #require(await eventually { clock.sleeperCount == 1 }, "the sweeper never went to sleep on the clock")
        clock.advance(byMillis: millis)
        try #require(await eventually { clock.sleeperCount == 1 }, "the sweep did not finish")
    }

    @Test func unpairedSessionExpiresAfterRetention() async throws {
        let clock = ManualClock()
        try await withRelay(clock: clock, {
            $0["SESSION_RETENTION_MS"] = "120"
            $0["SESSION_SWEEP_INTERVAL_MS"] = "50"
        }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            try await Self.sweep(clock, advancingBy: 60)
            #expect(try await relay.metrics()["sessions"]?.intValue == 1, "swept before its retention")
            try await Self.sweep(clock, advancingBy: 60)
            #expect(try await relay.metrics()["sessions"]?.intValue == 0)
            let socket = try await desktop.openSocket()
            try await socket.sendText(#"{"type":"relay.auth","token":"\#(desktop.desktopSessionToken)"}"#)
            #expect(try await socket.readUntilClosed().texts == [#"{"reason":"session_expired","type":"disconnect"}"#])
        }
    }

    @Test func trustedSessionsSurviveRetentionSweepsWhileDesktopOffline() async throws {
        let clock = ManualClock()
        try await withRelay(clock: clock, {
            $0["SESSION_RETENTION_MS"] = "500"
            $0["SESSION_SWEEP_INTERVAL_MS"] = "50"
            $0["TOKEN_ROTATION_GRACE_MS"] = "120"
        }) { relay in
            // The clock stands still while pairing, however long the machine takes.
            let paired = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
            await paired.desktop.disconnect()
            await paired.phone.disconnect()
            try #require(await eventually { try await relay.metrics()["activeWebSockets"]?.intValue == 0 })
            // Sweeps over six retention periods, none of them ending the trusted session.
            for _ in 0..<6 { try await Self.sweep(clock, advancingBy: 500) }
            #expect(try await paired.desktop.connect()["type"]?.stringValue == "auth_ok")
            #expect(try await paired.phone.connect()["desktopConnected"]?.boolValue == true)
        }
    }

    @Test func sessionWithAConnectedSocketIsNeverSwept() async throws {
        let clock = ManualClock()
        try await withRelay(clock: clock, {
            $0["SESSION_RETENTION_MS"] = "500"
            $0["SESSION_SWEEP_INTERVAL_MS"] = "50"
        }) { relay in
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            try await desktop.startPairing()
            _ = try await desktop.connect()
            for _ in 0..<6 { try await Self.sweep(clock, advancingBy: 500) }
            // The sentinel: a decision for no request is echoed as pair_result, so the first frame
            // after the sweeps shows that none of them sent anything before it.
            try await desktop.socket.sendText(#"{"type":"relay.pair_decision","requestID":"sentinel","approved":false}"#)
            let next = try await desktop.socket.nextFrame()
            #expect(next["type"]?.stringValue == "relay.pair_result")
            #expect(next["requestID"]?.stringValue == "sentinel")
            #expect(try await relay.metrics()["sessionsWithDesktop"]?.intValue == 1)
        }
    }

    /// `PORT=0`: the system chooses the port; the application, `onListening` and the log line
    /// all give the one it chose, and the default `wsURL` names it.
    @Test func portZeroListensWhereTheSystemChoseAndReportsIt() async throws {
        // No ALLOWED_ORIGINS: the default allowed origin follows the chosen port too.
        try await withRelay({ $0["ALLOWED_ORIGINS"] = nil }) { relay in
            #expect(relay.port > 0)
            #expect(relay.application.boundPort == relay.port)
            #expect(relay.logs.contains("listening"))
            #expect(relay.logs.lines.contains { $0.contains("listening") && $0.contains("port=\(relay.port)") })
            let desktop = RelayDesktop(baseURL: relay.baseURL)
            let started = try await desktop.startPairing()
            let body = try started.json()
            #expect(body["wsURL"]?.stringValue == "ws://localhost:\(relay.port)/ws")
            let own = "http://localhost:\(relay.port)"
            let answer = try await relay.http.get("/healthz", headers: [("Origin", own)])
            #expect(answer.headers.first { $0.0.lowercased() == "access-control-allow-origin" }?.1 == own)
            #expect(relay.application.relay.origins.allowsRequest(origin: own))
            #expect(!relay.application.relay.origins.allowsRequest(origin: "http://localhost:0"))
        }
    }

    @Test func gracefulShutdownDrainsEverySocketWithServerShutdown() async throws {
        let relay = try await TestRelay.start { $0["DRAIN_PERIOD_MS"] = "300" }
        let first = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
        let second = try await RelayPairing.pairConnected(baseURL: relay.baseURL)
        let started = ContinuousClock.now
        async let stopped: Void = relay.stop()
        for socket in [try first.desktop.socket, try first.phone.socket, try second.desktop.socket, try second.phone.socket] {
            let (texts, code) = try await socket.readUntilClosed(.seconds(5))
            #expect(texts.last == #"{"reason":"server_shutdown","type":"disconnect"}"#)
            #expect(code == 1012)
        }
        await stopped
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(relay.application.health.isDraining)
        #expect(relay.logs.contains("drained_sockets"))
        // A drain never deletes what a restarted node would need: the session is still known here.
        #expect(relay.application.relay.snapshot().sessions == 2)
    }

    @Test func sigtermDrainsAndExitsZero() async throws {
        let node = try LocalRelayNode.launch(
            port: try freeLoopbackPort(), environment: ["ALLOWED_ORIGINS": allowedOrigin, "DRAIN_PERIOD_MS": "200"])
        defer { node.process.terminateIfRunning() }
        try await node.waitUntilHealthy()
        let paired = try await RelayPairing.pairConnected(baseURL: node.baseURL)
        async let stopped = node.stop(timeout: .seconds(10))
        let (texts, code) = try await paired.phone.socket.readUntilClosed(.seconds(5))
        #expect(texts.last == #"{"reason":"server_shutdown","type":"disconnect"}"#)
        #expect(code == 1012)
        #expect(try await stopped == 0)
    }

    @Test func badConfigurationStopsTheStartNamingTheVariable() async throws {
        for (env, fragment) in [
            (["MAX_JSON_BYTES": "0"], "MAX_JSON_BYTES must be greater than 0."),
            (["MAX_PAIR_REQUESTS_PER_MINUTE": "lots"], "MAX_PAIR_REQUESTS_PER_MINUTE"),
            (["PUBLIC_BASE_URL": "ftp://x"], "PUBLIC_BASE_URL must use http or https."),
            (["HOST": "192.0.2.77"], "HOST"),
            // PROTOCOL §8: a bus without a signing secret is refused in every RELAY_ENV.
            (["NATS_URL": "nats://127.0.0.1:4222"], "NATS_HMAC_SECRET must be set when NATS_URL is configured."),
            (["NATS_URL": "nats://127.0.0.1:4222", "RELAY_ENV": "staging"], "NATS_HMAC_SECRET must be set when NATS_URL is configured."),
        ] {
            let process = try RelayProcess.launch(environment: env.merging(["PORT": "18999"]) { a, _ in a })
            #expect(try await process.waitForExit(timeout: .seconds(10)) != 0, "\(env)")
            #expect(process.standardError.contains(fragment), "\(env): \(process.standardError)")
        }
    }

    @Test func helpListsEveryVariable() async throws {
        let process = try RelayProcess.launch(arguments: ["--help"], environment: [:])
        #expect(try await process.waitForExit(timeout: .seconds(10)) == 0)
        for name in ["HOST", "PORT", "MAX_SOCKET_OUTBOUND_QUEUE", "DRAIN_PERIOD_MS", "NATS_HMAC_PREVIOUS_SECRET", "TRUST_PROXY"] {
            #expect(process.standardOutput.contains(name))
        }
    }
}

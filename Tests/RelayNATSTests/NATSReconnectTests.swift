// Buses on a nats-server each test starts and stops itself: late start, restart, outage shutdown, TLS.

import RelayCore
import RelayLocalCluster
import RelayTestSupport
import Testing

@testable import RelayNATS

@Suite(.timeLimit(.minutes(2))) struct NATSReconnectTests {
    @Test func startingWithNoServerDoesNotThrowAndConnectsWhenTheServerAppears() async throws {
        try await NATSServerProcess.with { server in
            let prefix = TestNATS.uniquePrefix()
            let a = try await Node.start(url: server.url, prefix: prefix)
            var b: Node?
            do {
                #expect(!a.bus.isConnected)
                // Asked for while no server is there: in effect once one is.
                a.bus.setSubscribed(true, sessionID: "session-late")

                try await server.start()
                #expect(await eventually { a.bus.isConnected })
                #expect(a.connectivity == [true])

                let peer = try await Node.start(url: server.url, prefix: prefix)
                b = peer
                #expect(await a.bus.flush())
                peer.bus.publish(peer.envelope(session: "session-late", payload: "hello"))
                #expect(await eventually { a.payloads == ["hello"] })
            }
            await a.bus.shutdown()
            await b?.bus.shutdown()
        }
    }

    @Test func serverRestartReportsDisconnectThenReconnectAndTrafficResumes() async throws {
        try await NATSServerProcess.with { server in
            try await server.start()
            try await withNodes(2, url: server.url) { nodes in
                let (a, b) = (nodes[0], nodes[1])
                await b.subscribe("session-restart")
                a.bus.publish(a.envelope(session: "session-restart", payload: "before"))
                #expect(await eventually { b.payloads == ["before"] })
                #expect(a.connectivity == [true])

                server.stop()
                #expect(await eventually { a.connectivity == [true, false] && b.connectivity == [true, false] })
                #expect(!a.bus.isConnected)
                #expect(await a.bus.flush(timeoutMillis: 200) == false)

                try await server.start()
                #expect(await eventually { a.connectivity == [true, false, true] && b.connectivity == [true, false, true] })
                #expect(a.bus.isConnected && b.bus.isConnected)
                #expect(a.bus.statistics.reconnects == 1)

                // libnats restored b's subscription; the flush makes sure the server has it.
                #expect(await b.bus.flush())
                a.bus.publish(a.envelope(session: "session-restart", payload: "after"))
                #expect(await eventually { b.payloads == ["before", "after"] })
            }
        }
    }

    @Test func shutdownDuringAnOutageIsPromptAndClean() async throws {
        try await NATSServerProcess.with { server in
            try await server.start()
            let node = try await Node.start(url: server.url, prefix: TestNATS.uniquePrefix())
            await node.subscribe("session-outage")
            server.stop()
            #expect(await eventually { !node.bus.isConnected })
            for index in 0..<100 { node.bus.publish(node.envelope(session: "session-outage", payload: "\(index)")) }
            // Confirming does not wait for a server that is not there: waiting would take the whole
            // flush bound (1 s); returning at once takes a bus-thread round trip, however busy the
            // machine is.
            let confirming = ContinuousClock.now
            await node.subscribe("session-outage-2")
            #expect(ContinuousClock.now - confirming < .seconds(1))

            let started = ContinuousClock.now
            await node.bus.shutdown()
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(node.bus.subscriptionsNotCompleted == 0)
            // No report after shutdown began.
            #expect(node.connectivity == [true, false])
        }
    }

    @Test func aConnectionTheClientLibraryGivesUpOnIsMadeAnew() async throws {
        let port = try freeLoopbackPort()
        let url = "nats://relay:new-password@127.0.0.1:\(port)"
        let prefix = TestNATS.uniquePrefix()
        // A server refusing the node's password: libnats closes the connection for good.
        try await NATSServerProcess.with(port: port, arguments: ["--user", "relay", "--pass", "old-password"]) { refusing in
            try await refusing.start()
            let node = try await Node.start(url: url, prefix: prefix)
            node.bus.setSubscribed(true, sessionID: "session-anew")
            try await Task.sleep(for: .milliseconds(500))
            #expect(!node.bus.isConnected)
            refusing.stop()

            // Once a server accepts it, the node connects anew and subscribes again.
            try await NATSServerProcess.with(port: port, arguments: ["--user", "relay", "--pass", "new-password"]) {
                accepting in
                try await accepting.start()
                #expect(await eventually { node.bus.isConnected })
                #expect(await node.bus.flush())
                let peer = try await Node.start(url: url, prefix: prefix)
                #expect(await peer.bus.flush())
                peer.bus.publish(peer.envelope(.desktop, session: "session-anew", payload: "session"))
                peer.bus.publish(peer.envelope(.sessionRefresh, session: "session-anew", payload: "control"))
                #expect(await eventually { Set(node.payloads) == ["session", "control"] })
                await peer.bus.shutdown()
            }
            await node.bus.shutdown()
            #expect(node.bus.subscriptionsNotCompleted == 0)
        }
    }

    @Test func tlsConnectsWithTheConfiguredCAAndRefusesAnUntrustedServer() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        try await NATSServerProcess.with(arguments: ["--tls", "--tlscert", certificate.certificate, "--tlskey", certificate.key]) {
            server in
            try await server.start()
            let url = "tls://127.0.0.1:\(server.port)"
            let prefix = TestNATS.uniquePrefix()
            let a = try await Node.start(url: url, prefix: prefix, tlsCAFile: certificate.certificate)
            let b = try await Node.start(url: url, prefix: prefix, tlsCAFile: certificate.certificate)
            // Without the CA the server's certificate is not trusted: no connection, but no throw either.
            let untrusting = try await Node.start(url: url, prefix: prefix)
            #expect(await eventually { a.bus.isConnected && b.bus.isConnected })
            await b.subscribe("session-tls")
            a.bus.publish(a.envelope(session: "session-tls", payload: "over tls"))
            #expect(await eventually { b.payloads == ["over tls"] })
            #expect(!untrusting.bus.isConnected)
            #expect(untrusting.connectivity.isEmpty)
            await a.bus.shutdown()
            await b.bus.shutdown()
            await untrusting.bus.shutdown()
        }
    }
}

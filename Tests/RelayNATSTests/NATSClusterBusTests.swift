// Buses on the shared test nats-server: delivery, order, subscriptions, rejections, shutdown.

import RelayCore
import RelayProtocol
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayNATS

@Suite(.timeLimit(.minutes(2))) struct NATSClusterBusTests {
    @Test func sessionEnvelopesArriveAtTheOtherNodeInPublishOrder() async throws {
        try await withNodes(2) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            await b.subscribe("session-order")
            let expected = (0..<1000).map { #"{"n":\#($0)}"# }
            for payload in expected { a.bus.publish(a.envelope(.desktop, session: "session-order", payload: payload)) }

            #expect(await eventually { b.received.count >= 1000 })
            #expect(b.payloads == expected)
            #expect(b.received.allSatisfy { $0.sourceInstanceID == a.bus.instanceID && $0.target == .desktop })
            #expect(a.bus.statistics.published == 1000)
            #expect(b.bus.statistics.delivered == 1000)
            // The sentinel: a control envelope from b, published after b had all 1,000.
            b.bus.publish(b.envelope(.sessionRefresh, session: "session-order", payload: "sentinel"))
            #expect(await eventually { a.payloads.contains("sentinel") })
            #expect(a.payloads == ["sentinel"])
        }
    }

    @Test func everyFieldSurvivesTheTrip() async throws {
        try await withNodes(2) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            await b.subscribe("session-fields")
            let sent = a.envelope(
                .mobile, session: "session-fields", payload: EnvelopeCodecTests.trickyPayload, deviceID: "device/1")
            a.bus.publish(sent)
            #expect(await eventually { b.received.count == 1 })
            #expect(b.received == [sent])
        }
    }

    @Test func unsubscribedSessionsAreNotDeliveredAndUnsubscribingStopsDelivery() async throws {
        try await withNodes(2) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            await b.subscribe("session-wanted")
            #expect(b.bus.subscriptionCount == 1)
            a.bus.publish(a.envelope(session: "session-other", payload: "other"))
            a.bus.publish(a.envelope(session: "session-wanted", payload: "wanted-1"))
            #expect(await eventually { b.payloads.contains("wanted-1") })

            b.bus.setSubscribed(false, sessionID: "session-wanted")
            #expect(b.bus.subscriptionCount == 0)
            #expect(await b.bus.flush())
            a.bus.publish(a.envelope(.mobile, session: "session-wanted", payload: "wanted-2"))
            a.bus.publish(a.envelope(.sessionRefresh, session: "session-wanted", payload: "marker"))
            // The marker, published after wanted-2 by the same node, is the sentinel.
            #expect(await eventually { b.payloads.contains("marker") })
            #expect(b.payloads == ["wanted-1", "marker"])
        }
    }

    @Test func resubscribingDeliversAgain() async throws {
        try await withNodes(2) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            for _ in 0..<3 {
                b.bus.setSubscribed(true, sessionID: "session-flap")
                b.bus.setSubscribed(false, sessionID: "session-flap")
            }
            await b.subscribe("session-flap")
            a.bus.publish(a.envelope(session: "session-flap", payload: "once"))
            a.bus.publish(a.envelope(session: "session-flap", payload: "sentinel"))
            #expect(await eventually { b.payloads.contains("sentinel") })
            #expect(b.payloads == ["once", "sentinel"])
        }
    }

    @Test func concurrentConfirmationsAllSucceed() async throws {
        try await withNodes(1) { nodes in
            let bus = nodes[0].bus
            let results = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        bus.setSubscribed(true, sessionID: "session-\(index)")
                        return await bus.flush()
                    }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results == Array(repeating: true, count: 200))
            #expect(bus.subscriptionCount == 200)
        }
    }

    @Test func failedSubscriptionsAreRetriedEverySecond() async throws {
        let prefix = TestNATS.uniquePrefix()
        let a = try await Node.start(prefix: prefix)
        let b = NATSClusterBus(
            configuration: try NATSClusterBusConfiguration(url: TestNATS.url(), subjectPrefix: prefix, secret: TestNATS.secret))
        let inbox = Mutex<[String]>([])
        // The control subscription at start and the session subscription right after fail, and so
        // does every retry until the messages meant to be lost have been published: on a busy
        // machine a retry may otherwise land first.
        b.faults.failSubscriptions(1_000_000)
        try await b.start(
            handler: { envelope in inbox.withLock { $0.append(String(decoding: envelope.payload, as: UTF8.self)) } },
            connectivity: { _ in })
        b.setSubscribed(true, sessionID: "session-retry")
        #expect(await b.flush())
        a.bus.publish(a.envelope(.sessionRefresh, session: "session-retry", payload: "lost-control"))
        a.bus.publish(a.envelope(.desktop, session: "session-retry", payload: "lost-session"))
        #expect(await a.bus.flush())
        b.faults.stopFailingSubscriptions()

        // Retried about a second later: probes go out until both subscriptions carry one.
        let retried = await eventually(timeout: .seconds(30)) {
            a.bus.publish(a.envelope(.sessionRefresh, session: "session-retry", payload: "control"))
            a.bus.publish(a.envelope(.desktop, session: "session-retry", payload: "session"))
            _ = await a.bus.flush()
            try? await Task.sleep(for: .milliseconds(100))
            return Set(inbox.withLock { $0 }).isSuperset(of: ["control", "session"])
        }
        #expect(retried)
        // What was published while the subscriptions had failed never arrives (NATS keeps nothing).
        #expect(Set(inbox.withLock { $0 }) == ["control", "session"])
        await a.bus.shutdown()
        await b.shutdown()
    }

    @Test func controlTargetsReachEveryOtherNodeButNotThePublisher() async throws {
        try await withNodes(3) { nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            let targets: [BusTarget] = [.pairDecision, .sessionRefresh, .desktopStatusProbe, .desktopStatusResponse]
            #expect(await a.bus.flush())
            for target in targets { a.bus.publish(a.envelope(target, session: "session-control", payload: target.rawValue)) }

            #expect(await eventually { b.received.count == 4 && c.received.count == 4 })
            #expect(b.received.map(\.target) == targets)
            #expect(c.received.map(\.target) == targets)
            // Subscribed to a session itself, the publisher still does not hear its own traffic.
            await a.subscribe("session-shared")
            await b.subscribe("session-shared")
            a.bus.publish(a.envelope(.mobile, session: "session-shared", payload: "own"))
            #expect(await eventually { b.payloads.contains("own") })
            b.bus.publish(b.envelope(.mobile, session: "session-shared", payload: "sentinel"))
            #expect(await eventually { a.payloads.contains("sentinel") })
            #expect(a.payloads == ["sentinel"])
            #expect(c.received.count == 4)
        }
    }

    @Test func forgedReplayedAndMalformedEnvelopesPublishedRawAreRejectedAndCounted() async throws {
        try await withNodes(1) { nodes in
            let b = nodes[0]
            await b.subscribe("session-forged")
            let subject = "\(b.bus.configuration.subjectPrefix).session.session-forged"
            let genuine = try #require(EnvelopeSigner(secret: TestNATS.secret))
            let forger = try #require(EnvelopeSigner(secret: "wrong-secret-wrong-secret-wrong-secret"))
            func envelope(_ payload: String, issuedAt: Int64 = wallClockMillis()) -> BusEnvelope {
                BusEnvelope(
                    sessionID: "session-forged", sourceInstanceID: "intruder", target: .desktop, payload: Array(payload.utf8),
                    issuedAtMillis: issuedAt, nonce: Identifiers.shortID())
            }
            let valid = envelope("valid")
            let validBytes = EnvelopeCodec.encode(valid, signer: genuine)
            try await rawPublish(
                url: TestNATS.url(), subject: subject,
                [
                    EnvelopeCodec.encode(envelope("forged"), signer: forger),
                    EnvelopeCodec.encode(envelope("unsigned"), signer: nil),
                    Array("not an envelope".utf8),
                    validBytes,
                    validBytes,
                    EnvelopeCodec.encode(envelope("stale", issuedAt: wallClockMillis() - 600_000), signer: genuine),
                    EnvelopeCodec.encode(envelope("future", issuedAt: wallClockMillis() + 600_000), signer: genuine),
                ])

            #expect(await eventually { b.bus.statistics.received == 7 })
            let statistics = b.bus.statistics
            #expect(statistics.rejected[.signature] == 2)
            #expect(statistics.rejected[.decode] == 1)
            #expect(statistics.rejected[.replay] == 1)
            #expect(statistics.rejected[.stale] == 1)
            #expect(statistics.rejected[.future] == 1)
            #expect(statistics.rejected[.schema] == 0)
            #expect(statistics.delivered == 1)
            #expect(b.received == [valid])
        }
    }

    @Test func unsignedNodesExchangeWithoutSignatureTimeOrNonceChecks() async throws {
        try await withNodes(2, secret: nil) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            await b.subscribe("session-unsigned")
            let bare = BusEnvelope(
                sessionID: "session-unsigned", sourceInstanceID: a.bus.instanceID, target: .desktop,
                payload: Array("{}".utf8), issuedAtMillis: 0, nonce: "")
            a.bus.publish(bare)
            a.bus.publish(bare)
            #expect(await eventually { b.received.count == 2 })
            #expect(b.received == [bare, bare])
        }
    }

    @Test func aRotatingNodeAcceptsTheOldSecretWhileSigningWithTheNewOne() async throws {
        let prefix = TestNATS.uniquePrefix()
        let oldSecret = "old-secret-old-secret-old-secret-old"
        let rotated = try await Node.start(prefix: prefix, secret: TestNATS.secret, previousSecret: oldSecret)
        let stale = try await Node.start(prefix: prefix, secret: oldSecret)
        #expect(await rotated.bus.flush())
        #expect(await stale.bus.flush())
        stale.bus.publish(stale.envelope(.sessionRefresh, session: "s", payload: "from-old"))
        #expect(await eventually { rotated.payloads == ["from-old"] })
        rotated.bus.publish(rotated.envelope(.sessionRefresh, session: "s", payload: "from-new"))
        #expect(await eventually { stale.bus.statistics.rejected[.signature] == 1 })
        #expect(stale.received.isEmpty)
        await rotated.bus.shutdown()
        await stale.bus.shutdown()
    }

    @Test func shutdownSendsWhatWasQueuedAndIsSafeToRepeat() async throws {
        try await withNodes(2) { nodes in
            let (a, b) = (nodes[0], nodes[1])
            await b.subscribe("session-shutdown")
            let expected = (0..<5000).map { "m\($0)" }
            for payload in expected { a.bus.publish(a.envelope(.mobile, session: "session-shutdown", payload: payload)) }
            await a.bus.shutdown()
            await a.bus.shutdown()
            #expect(!a.bus.isConnected)
            #expect(a.bus.subscriptionsNotCompleted == 0)

            #expect(await eventually { b.received.count >= 5000 })
            #expect(b.payloads == expected)
            // After shutdown: publishing is a no-op and the bus cannot start again.
            a.bus.publish(a.envelope(session: "session-shutdown", payload: "late"))
            await #expect(throws: NATSBusError.self) {
                try await a.bus.start(handler: { _ in }, connectivity: { _ in })
            }

            async let first: Void = b.bus.shutdown()
            async let second: Void = b.bus.shutdown()
            _ = await (first, second)
            #expect(b.bus.subscriptionsNotCompleted == 0)
            // Shutdown has returned: nothing is delivered after it, so no wait is needed.
            #expect(b.payloads == expected)
        }
    }

    @Test func aBusThatNeverStartedShutsDownAtOnce() async throws {
        let bus = NATSClusterBus(configuration: try NATSClusterBusConfiguration(url: TestNATS.url()))
        bus.setSubscribed(true, sessionID: "s")
        bus.publish(BusEnvelope(sessionID: "s", sourceInstanceID: bus.instanceID, target: .desktop, payload: [], issuedAtMillis: 1, nonce: "n"))
        #expect(bus.subscriptionCount == 1)
        await bus.shutdown()
        await bus.shutdown()
        #expect(!bus.isConnected)
        #expect(await bus.flush() == false)
    }

    /// A bus whose thread could not start has nobody to take from its queue: its start fails,
    /// and a later flush or shutdown answers at once instead of waiting forever.
    @Test func aBusWhoseThreadCannotStartAnswersFlushAndShutdownAtOnce() async throws {
        let bus = NATSClusterBus(configuration: try NATSClusterBusConfiguration(url: TestNATS.url()))
        bus.faults.failThreadStart()
        await #expect(throws: NATSBusError.self) {
            try await bus.start(handler: { _ in }, connectivity: { _ in })
        }
        #expect(await bus.flush() == false)
        await bus.confirmSubscriptions()
        await bus.shutdown()
        #expect(!bus.isConnected)
    }

    @Test func instanceIDsAreNewPerBus() throws {
        let configuration = try NATSClusterBusConfiguration(url: TestNATS.url())
        let ids = (0..<3).map { _ in NATSClusterBus(configuration: configuration).instanceID }
        #expect(Set(ids).count == 3)
        #expect(ids.allSatisfy { $0.utf8.count == 14 })
    }
}

@Suite(.timeLimit(.minutes(2))) struct NATSClusterBusStartTests {
    @Test func anUnreadableCAFileFailsTheStart() async throws {
        var configuration = try NATSClusterBusConfiguration(url: "tls://127.0.0.1:1")
        configuration.tlsCAFile = "/nonexistent/ca.pem"
        let bus = NATSClusterBus(configuration: configuration)
        let error = await #expect(throws: NATSBusError.self) {
            try await bus.start(handler: { _ in }, connectivity: { _ in })
        }
        #expect(error?.message.contains("/nonexistent/ca.pem") == true)
        #expect(!bus.isConnected)
        await bus.shutdown()
    }

    @Test func flushBeforeStartAnswersAtOnce() async {
        let bus = NATSClusterBus(configuration: NATSClusterBusConfiguration(servers: NATSServerList(servers: [.init(host: "127.0.0.1", port: 1)])))
        #expect(await bus.flush() == false)
        await bus.shutdown()
    }
}

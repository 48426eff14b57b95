import Foundation
import RelayLocalCluster
import RelayProtocol
import RelayTestClient
import RelayTestSupport
import Testing

/// Issue 16: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, a pairing that starts on one node, is
/// approved through a second and joins on a third reaches a local OTLP/HTTP receiver as one trace.
@Suite("Tracing", .serialized, .timeLimit(.minutes(3)))
struct TracingTests {
    @Test func aPairingAcrossThreeNodesIsOneTrace() async throws {
        let receiver = try await OTLPReceiver.start()
        defer { Task { await receiver.stop() } }
        let environment = [
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.baseURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            "OTEL_SERVICE_NAME": "relay-under-test", "OTEL_BSP_SCHEDULE_DELAY": "100",
        ]
        try await withRelayCluster(count: 3, environment: environment) { cluster in
            // /pair/start on node 0, the desktop's socket (and so its decision) on node 1, the
            // phone's join and socket on node 2.
            let desktop = RelayDesktop(baseURL: cluster.baseURL(0))
            let phone = RelayPhone(baseURL: cluster.baseURL(2))
            let paired = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, desktopSocketURL: cluster.socketURL(1), phoneSocketURL: cluster.socketURL(2))
            #expect(paired.pairResult?["approved"]?.boolValue == true)

            let expected = [
                "POST /pair/start", "relay.auth", "POST /pair/join", "relay.pair_request receive", "relay.pair_decision",
                "relay.pair_decision receive",
            ]
            // The exporters flush every 100 ms; a minute is for a machine busy with other work.
            var pairing: [ReceivedSpan] = []
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let spans = receiver.spans
                if let start = spans.first(where: { $0.name == "POST /pair/start" }) {
                    pairing = spans.filter { $0.traceID == start.traceID }
                    if Set(expected).isSubset(of: Set(pairing.map(\.name))) { break }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            try #require(
                Set(expected).isSubset(of: Set(pairing.map(\.name))),
                "spans received: \(receiver.spans.map { "\($0.name) trace=\($0.traceID) parent=\($0.parentSpanID)" }), requests: \(receiver.paths), logs: \(cluster.logs(0).suffix(2000))")

            func span(_ name: String) throws -> ReceivedSpan { try #require(pairing.first { $0.name == name }) }
            let start = try span("POST /pair/start")
            let auth = try #require(pairing.first { $0.name == "relay.auth" && $0.attributes["relay.role"] == "desktop" })
            let join = try span("POST /pair/join")
            let request = try span("relay.pair_request receive")
            let decision = try span("relay.pair_decision")
            let applied = try span("relay.pair_decision receive")

            // Parent links: the stored pairing context, then the bus envelopes' traceparent.
            #expect(start.parentSpanID.isEmpty)
            #expect(auth.parentSpanID == start.spanID)
            #expect(join.parentSpanID == start.spanID)
            #expect(request.parentSpanID == join.spanID)
            #expect(decision.parentSpanID == request.spanID)
            #expect(applied.parentSpanID == decision.spanID)

            // Three nodes, each doing its part.
            let node = { (span: ReceivedSpan) in span.attributes["relay.node"] ?? "" }
            #expect(Set([start, auth, join, request, decision, applied].map(node)).count == 3)
            #expect(node(auth) == node(request) && node(request) == node(decision))
            #expect(node(join) == node(applied))
            #expect(node(start) != node(auth) && node(start) != node(join) && node(auth) != node(join))

            #expect(start.attributes["http.response.status_code"] == "200")
            #expect(join.attributes["http.response.status_code"] == "200")
            #expect(join.attributes["relay.device"] == paired.phone.credentials?.deviceID)
            #expect(decision.attributes["relay.approved"] == "true")
            #expect(applied.attributes["relay.approved"] == "true")
            #expect(pairing.filter { $0.name == "relay.pair_decision receive" }.count == 1, "only the node holding the join traces the decision")
            #expect(pairing.allSatisfy { $0.serviceName == "relay-under-test" })
            #expect(receiver.paths.allSatisfy { $0 == "/v1/traces" })

            // Spans leave the cluster: no credential is in any of them.
            let exported = receiver.bodies.joined()
            let secrets = [desktop.desktopSessionToken, desktop.joinToken, paired.phone.credentials?.deviceSessionToken ?? "?", desktop.sessionID]
            for secret in secrets { #expect(!exported.contains(secret)) }
        }
    }
}

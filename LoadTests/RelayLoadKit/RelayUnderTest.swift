// The relay a run drives: the one at RELAY_LOAD_BASE_URL, or a local `relay` process the harness
// starts (a child process, so its CPU and memory are measured apart from the harness's).

import Foundation
import RelayTestClient
import RelayLocalCluster

/// The relay under test.
package final class RelayUnderTest: Sendable {
    /// Where the phones and desktops go.
    package let baseURL: String
    /// The local process, when the harness started it.
    package let local: LocalRelayNode?
    /// The environment given to the local relay beyond the basics (recorded in artifacts).
    package let overrides: [String: String]

    /// The process ids to account for.
    package let pids: [Int32]

    private init(baseURL: String, local: LocalRelayNode?, overrides: [String: String]) {
        self.baseURL = baseURL
        self.local = local
        self.overrides = overrides
        self.pids = local.map { [$0.pid] } ?? []
    }

    /// A relay someone else runs and stops (a node of a `LocalCluster`), whose processes `pids`
    /// are accounted for.
    package init(baseURL: String, pids: [Int32], overrides: [String: String] = [:]) {
        self.baseURL = baseURL
        self.local = nil
        self.overrides = overrides
        self.pids = pids
    }

    /// `baseURL` when given; otherwise starts `relay` on a free loopback port with
    /// `PUBLIC_BASE_URL=http://127.0.0.1:<port>`, `ALLOWED_ORIGINS=<origin>`,
    /// `MAX_PAIR_REQUESTS_PER_MINUTE=20000` (§9.1's in-process relay) plus `overrides`, and waits
    /// until it is healthy.
    package static func resolve(
        baseURL: String?, origin: String, overrides: [String: String] = [:]
    ) async throws -> RelayUnderTest {
        if let baseURL { return RelayUnderTest(baseURL: baseURL, local: nil, overrides: [:]) }
        let port = try freeLoopbackPort()
        var environment = [
            "HOST": "127.0.0.1",
            "PORT": "\(port)",
            "PUBLIC_BASE_URL": "http://127.0.0.1:\(port)",
            "ALLOWED_ORIGINS": origin,
            "MAX_PAIR_REQUESTS_PER_MINUTE": "20000",
            "LOG_LEVEL": "warning",
        ]
        environment.merge(overrides) { _, override in override }
        let node = try LocalRelayNode.launch(executable: try LocalRelayNode.defaultExecutable(), port: port, environment: environment)
        do {
            try await node.waitUntilHealthy()
        } catch {
            try? await node.kill()
            throw error
        }
        return RelayUnderTest(baseURL: node.baseURL, local: node, overrides: overrides)
    }

    /// `outboundSendFailures`, `slowConsumerDisconnects` and `wsAuthFailures` from `GET /metricsz`
    /// (JSON); a missing field counts as 0 (§9.1).
    package func counters() async throws -> RelayCounters {
        let metrics = try await metrics()
        return RelayCounters(
            outboundSendFailures: metrics["outboundSendFailures"]?.intValue ?? 0,
            slowConsumerDisconnects: metrics["slowConsumerDisconnects"]?.intValue ?? 0,
            wsAuthFailures: metrics["wsAuthFailures"]?.intValue ?? 0)
    }

    /// The `/metricsz` JSON, for mode-specific figures.
    package func metrics() async throws -> JSONValue {
        let response = try await RelayHTTPClient(baseURL: baseURL).get("/metricsz", headers: [("Accept", "application/json")], timeout: .seconds(10))
        guard response.status == 200 else {
            throw RelayClientError.unexpectedStatus(operation: "GET /metricsz", status: response.status, body: response.bodyText)
        }
        return try response.json()
    }

    /// Stops the local relay (SIGTERM, drain, exit); nothing for a remote one.
    package func shutdown() async {
        guard let local else { return }
        _ = try? await local.stop()
    }

    /// The relay's identity for artifacts: `local` (with its overrides) or `remote`.
    package var relayMembers: [(String, ArtifactJSON)] {
        [
            ("relay_process", .string(pids.isEmpty ? "remote" : "local")),
            ("relay_overrides", .object(overrides.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
        ]
    }
}

extension RelayUnderTest {
    /// Pairs `count` sessions (desktop and one phone each) with at most `width` pairings at once.
    /// `phoneBaseURL`: the phones join and connect through another node of the cluster.
    func pairSessions(
        count: Int, width: Int, origin: String, phoneBaseURL: String? = nil, errors: inout [String]
    ) async -> [RelayPairedSession] {
        let sessions = Locked<[Int: RelayPairedSession]>([:])
        let baseURL = self.baseURL
        let phoneSocketURL = phoneBaseURL.map(SessionLoad.socketURL)
        let failures = await forEachConcurrently(count: count, width: width) { index in
            let session = try await RelayPairing.pairConnected(
                desktop: RelayDesktop(baseURL: baseURL), phone: RelayPhone(baseURL: phoneBaseURL ?? baseURL, origin: origin),
                phoneSocketURL: phoneSocketURL, deviceName: "Load Harness iPhone", idleTimeoutSeconds: 1800, drainIdle: .milliseconds(1))
            sessions.withLock { $0[index] = session }
        }
        errors += failures.map { "pairing session \($0.0): \($0.1)" }
        return sessions.withLock { dictionary in dictionary.keys.sorted().map { dictionary[$0]! } }
    }
}

/// Runs `body(index)` for `0..<count` with at most `width` at once (one permit per item for its
/// whole run, like §9.1's setup semaphore). Returns the failures in index order.
package func forEachConcurrently(
    count: Int, width: Int, _ body: @escaping @Sendable (Int) async throws -> Void
) async -> [(Int, any Error)] {
    await withTaskGroup(of: (Int, (any Error)?).self) { group in
        var next = 0
        var failures: [(Int, any Error)] = []
        func launch() {
            let index = next
            next += 1
            group.addTask {
                do {
                    try await body(index)
                    return (index, nil)
                } catch {
                    return (index, error)
                }
            }
        }
        while next < min(width, count) { launch() }
        while let (index, error) = await group.next() {
            if let error { failures.append((index, error)) }
            if next < count { launch() }
        }
        return failures.sorted { $0.0 < $1.0 }
    }
}

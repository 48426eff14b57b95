// The redis-failover drill: a Redis master, two replicas and three Sentinels on loopback, three
// relay nodes following them (REDIS_SENTINELS), and the master killed with SIGKILL while clients
// pair, rotate tokens and exchange commands. Run once per REDIS_MIN_REPLICAS_ACK setting (1, then
// 0): how long Sentinel and each node took, what was refused meanwhile, and whether everything the
// relay acknowledged (pairings, rotated tokens, commands) is still there afterwards.
//
// The replicas are cut off from the master for `replicaHoldMilliseconds` before the kill (SIGSTOP
// of both replicas, then `CLIENT KILL TYPE replica` on the master: what a partition between the
// master and its replicas looks like from the master). On loopback a SIGSTOP alone would hide
// nothing: what the master writes to a stopped replica waits in the replica's socket buffer and is
// applied when it resumes. With the links closed, the writes of that window exist on the master
// only, which is what asynchronous replication risks; REDIS_MIN_REPLICAS_ACK=1 must refuse them
// instead of acknowledging them.

import Foundation
import RelayTestClient
import RelayLoadKit
import RelayLocalCluster

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs the redis-failover drill (`Drill.redisFailover`).
enum RedisFailoverDrill {
    static func run(_ configuration: DrillConfiguration) async throws -> DrillReport {
        let report = DrillReport(drill: .redisFailover, echo: configuration.echo)
        var results: [FailoverRunResult] = []
        for ack in configuration.minReplicasAckSettings {
            results.append(try await FailoverRun(minReplicasAck: ack, configuration: configuration, report: report).execute())
        }
        report.summarize(["summary (time since the kill of the master; acknowledged = answered 200 / auth_ok):"] + results.flatMap(\.summary))
        report.fact("sentinel_down_after_ms", .int(configuration.sentinelDownAfterMilliseconds))
        report.fact("replica_hold_ms", .int(configuration.replicaHoldMilliseconds))
        report.fact("runs", .array(results.map(\.json)))
        return report
    }
}

/// What one run (one REDIS_MIN_REPLICAS_ACK setting) measured.
struct FailoverRunResult {
    var minReplicasAck: Int
    var replicasCutOff = false
    var promotionSeconds: Double?
    var promotedPort: Int?
    var sentinelSeconds: [Double?] = []
    var nodeFollowSeconds: [Double?] = []
    var streams = WriteStreams.Counts()
    var pairingsVerified = 0
    var pairingsLost = 0
    var rotationsVerified = 0
    var rotationsLost = 0
    var trafficDevicesLost = 0
    var tokenFallbacks = 0
    var traffic = ClusterTrafficTally()
    var masterChanges: [Int] = []
    var replicationShortfalls = 0
    var masterChangedLogLines = 0
    var switchMasterLogLines = 0
    var replicationBytesBehind: Int?
    var cutOffReads: String?
    var cutOffReadMaxSeconds: Double?
    var calmReadMaxSeconds: Double?
    var rotationRefusalPhases: [String: [String: Int]] = [:]

    var lostAcknowledged: Int { pairingsLost + rotationsLost + trafficDevicesLost + traffic.lostMessages }

    var summary: [String] {
        func seconds(_ value: Double?) -> String { value.map { String(format: "%.2f s", $0) } ?? "never" }
        func window(_ count: Int) -> String { replicasCutOff ? " (\(count) sent while the replicas were cut off)" : "" }
        return [
            "REDIS_MIN_REPLICAS_ACK=\(minReplicasAck):",
            "  Sentinel promoted 127.0.0.1:\(promotedPort.map(String.init) ?? "?") after \(seconds(promotionSeconds));"
                + " relay nodes followed after \(nodeFollowSeconds.map(seconds).joined(separator: ", "))",
            "  pairings: \(streams.pairingsAcknowledged) acknowledged\(window(streams.pairingsInWindow)),"
                + " \(pairingsLost) lost; \(streams.pairingsRefused) refused (\(streams.pairingsRefused503) with HTTP 503)",
            "  rotations: \(streams.rotationsAcknowledged) acknowledged\(window(streams.rotationsInWindow)),"
                + " \(rotationsLost) lost (latest token of \(streams.phones) phones); \(streams.rotationsRefused) auths refused"
                + " (\(streams.rotationsPersistFailed) token_rotation_persist_failed)",
            "  round trips: \(traffic.delivered) acknowledged, \(traffic.lostMessages) lost, \(traffic.lostSessions.count) sessions lost,"
                + " \(trafficDevicesLost) traffic devices lost",
            "  first write acknowledged again (sent after the kill): pairing \(seconds(streams.firstPairingAfterKill)),"
                + " rotation \(seconds(streams.firstRotationAfterKill)); relay_redis_replication_shortfalls_total +\(replicationShortfalls)",
        ] + (cutOffReads.map { ["  /devices/list while the replicas were cut off: \($0)"] } ?? []) + (rotationRefusalPhases.isEmpty ? [] : [
            "  refused mobile auths: " + FailoverRun.phaseText(rotationRefusalPhases)
        ])
    }

    var json: ArtifactJSON {
        .object([
            ("min_replicas_ack", .int(minReplicasAck)),
            ("replicas_cut_off", .bool(replicasCutOff)),
            ("promoted_port", .optionalInt(promotedPort)),
            ("promotion_seconds", .number(promotionSeconds)),
            ("sentinel_named_new_master_seconds", .array(sentinelSeconds.map { .number($0) })),
            ("node_follow_seconds", .array(nodeFollowSeconds.map { .number($0) })),
            ("replication_bytes_behind_at_kill", .optionalInt(replicationBytesBehind)),
            ("pairings_acknowledged", .int(streams.pairingsAcknowledged)),
            ("pairings_acknowledged_while_cut_off", .int(streams.pairingsInWindow)),
            ("pairings_refused", .int(streams.pairingsRefused)),
            ("pairings_refused_503", .int(streams.pairingsRefused503)),
            ("pairings_verified", .int(pairingsVerified)),
            ("pairings_lost", .int(pairingsLost)),
            ("rotations_acknowledged", .int(streams.rotationsAcknowledged)),
            ("rotations_acknowledged_while_cut_off", .int(streams.rotationsInWindow)),
            ("rotations_refused", .int(streams.rotationsRefused)),
            ("rotations_refused_persist_failed", .int(streams.rotationsPersistFailed)),
            ("rotations_rejected_session_expired", .int(streams.rotationsRejected)),
            ("rotating_phones", .int(streams.phones)),
            ("rotations_verified", .int(rotationsVerified)),
            ("rotations_lost", .int(rotationsLost)),
            ("first_pairing_after_kill_seconds", .number(streams.firstPairingAfterKill)),
            ("first_rotation_after_kill_seconds", .number(streams.firstRotationAfterKill)),
            ("messages_delivered", .int(traffic.delivered)),
            ("messages_resent", .int(traffic.resent)),
            ("messages_lost", .int(traffic.lostMessages)),
            ("messages_reordered", .int(traffic.reordered)),
            ("lost_sessions", .int(traffic.lostSessions.count)),
            ("traffic_devices_lost", .int(trafficDevicesLost)),
            ("token_fallbacks", .int(tokenFallbacks)),
            ("relay_redis_master_changes_total", .array(masterChanges.map { .int($0) })),
            ("relay_redis_replication_shortfalls_total", .int(replicationShortfalls)),
            ("log_redis_master_changed", .int(masterChangedLogLines)),
            ("log_redis_sentinel_switch_master", .int(switchMasterLogLines)),
            ("rotation_refusals", .object(rotationRefusalPhases.sorted { $0.key < $1.key }.map { phase in
                (phase.key, .object(phase.value.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }))
            })),
            ("read_max_seconds_calm", .number(calmReadMaxSeconds)),
            ("read_max_seconds_cut_off", .number(cutOffReadMaxSeconds)),
            ("acknowledged_lost", .int(lostAcknowledged)),
        ])
    }
}

/// One run: its own servers, cluster and streams.
struct FailoverRun {
    let minReplicasAck: Int
    let configuration: DrillConfiguration
    let report: DrillReport

    static let masterName = "relay"

    private func note(_ text: String) { report.note("[ack \(minReplicasAck)] " + text) }
    private func check(_ name: String, _ passed: Bool, _ detail: String) {
        report.check("\(name) (REDIS_MIN_REPLICAS_ACK=\(minReplicasAck))", passed, detail)
    }

    func execute() async throws -> FailoverRunResult {
        var result = FailoverRunResult(minReplicasAck: minReplicasAck)
        let redisExecutable = try configuration.redisExecutable ?? LocalDependencyServer.findExecutable("redis-server")
        // Diskless replication without its default 5 s wait for more replicas: a replica that
        // needs a full copy gets it at once, here and after the failover.
        let replication = ["--repl-diskless-sync-delay", "0"]
        let master = try LocalDependencyServer(.redis(appendOnly: false), executable: redisExecutable, arguments: replication)
        var servers = [master]
        defer {
            for server in servers {
                server.process?.send(SIGCONT)
                server.terminateIfRunning()
            }
        }
        try await master.start()
        let replicas = try (0..<2).map { _ in
            try LocalDependencyServer(
                .redis(appendOnly: false), executable: redisExecutable, arguments: replication + ["--replicaof", "127.0.0.1", "\(master.port)"])
        }
        servers += replicas
        for replica in replicas { try await replica.start() }
        try await waitUntil("both replicas in sync with the master", timeout: .seconds(30)) {
            await Self.onlineReplicas(master.port) == 2
        }
        let downAfter = configuration.sentinelDownAfterMilliseconds
        let sentinels = try (0..<3).map { _ in
            try LocalDependencyServer(
                .sentinel(masterName: Self.masterName, masterPort: master.port, quorum: 2, downAfterMillis: downAfter), executable: redisExecutable)
        }
        servers += sentinels
        for sentinel in sentinels { try await sentinel.start() }
        try await waitUntil("every Sentinel knows both replicas and the two other Sentinels", timeout: .seconds(30)) {
            for sentinel in sentinels where !(await Self.sentinelReady(sentinel.port)) { return false }
            return true
        }

        let cluster = try await LocalCluster.start(
            nodes: configuration.nodes, redis: .external(url: ""), nats: .local(executable: configuration.natsExecutable),
            environment: [
                // No REDIS_URL: the Sentinels alone name the master.
                "REDIS_URL": "", "REDIS_SENTINELS": sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ","),
                "REDIS_SENTINEL_MASTER": Self.masterName, "REDIS_MIN_REPLICAS_ACK": "\(minReplicasAck)",
                "ALLOWED_ORIGINS": configuration.origin, "MAX_PAIR_REQUESTS_PER_MINUTE": "20000",
                // Refused auths during the switch must not run into the per-IP budget (all clients are 127.0.0.1).
                "MAX_WS_AUTH_FAILURES_PER_MINUTE": "100000",
                "DRAIN_PERIOD_MS": "\(configuration.drainPeriodMilliseconds)",
                // redis_master_changed and redis_sentinel_switch_master are notices; JSON as in
                // the ConfigMap (and with milliseconds).
                "LOG_LEVEL": "notice", "LOG_FORMAT": "json",
            ], prefix: "relaydrill")
        defer { cluster.killAll() }
        let nodes = Array(0..<cluster.count)
        let masters = await nodes.asyncMap { await Self.followedMaster(cluster, $0) }
        note(
            "up: redis-server master 127.0.0.1:\(master.port), replicas \(replicas.map { "127.0.0.1:\($0.port)" }.joined(separator: ", ")),"
                + " Sentinels \(sentinels.map { "\($0.port)" }.joined(separator: ", ")) (master name \(Self.masterName), quorum 2,"
                + " down-after \(downAfter) ms), nats-server, relay nodes on \(nodes.map { "\(cluster.port($0))" }.joined(separator: ", "))"
                + " with REDIS_SENTINELS, REDIS_MIN_REPLICAS_ACK=\(minReplicasAck); /readyz redisSentinel.master per node: "
                + masters.map { $0.master ?? "none" }.joined(separator: ", "))

        let traffic = try await ClusterTraffic.start(
            on: cluster, ClusterTrafficConfiguration(sessions: configuration.sessions, origin: configuration.origin))
        let streams = try await WriteStreams.start(
            on: cluster, origin: configuration.origin, pairingStreams: configuration.pairingStreams, rotatingPhones: configuration.rotatingPhones)
        note(
            "\(traffic.sessionCount) sessions exchange acknowledged commands (desktop and phone on different nodes); \(configuration.pairingStreams)"
                + " loops pair new sessions (pair/start, desktop auth, join, approve); \(configuration.rotatingPhones) phones reconnect in turn"
                + " to every node, each auth_ok rotating their token")
        try? await Task.sleep(for: configuration.warmup - .seconds(1))
        let calmReads = await probeReads(streams, cluster, for: .seconds(1))
        let warm = streams.counts
        note(
            "warm-up: \(traffic.counts.delivered) commands, \(warm.pairingsAcknowledged) pairings and \(warm.rotationsAcknowledged) rotations"
                + " acknowledged; \(warm.pairingsRefused + warm.rotationsRefused) refused")
        let before = await scrape(cluster, nodes)

        // Cut the replicas off, then kill the master.
        var cutOffReads: Task<[(status: Int?, elapsed: Duration)], Never>?
        if configuration.replicaHoldMilliseconds > 0 {
            for replica in replicas { replica.process?.send(SIGSTOP) }
            let closed = await redisCommand(port: master.port, ["CLIENT", "KILL", "TYPE", "replica"])
            streams.mark(cutOff: .now)
            result.replicasCutOff = true
            note(
                "replicas cut off: SIGSTOP of both, CLIENT KILL TYPE replica on the master (\(closed?.description ?? "no answer"));"
                    + " the master alone takes writes for \(configuration.replicaHoldMilliseconds) ms")
            let hold = Duration.milliseconds(configuration.replicaHoldMilliseconds)
            cutOffReads = Task { await probeReads(streams, cluster, for: hold) }
            try? await Task.sleep(for: hold)
        }
        let masterOffset = await Self.replicationOffset(master.port, field: "master_repl_offset")
        let masterPID = master.process?.pid ?? 0
        let killed = ContinuousClock.now
        streams.mark(kill: killed)
        try await master.stop(graceful: false)
        for replica in replicas { replica.process?.send(SIGCONT) }
        // What a resumed replica still had in its socket buffer is applied first.
        try? await Task.sleep(for: .milliseconds(100))
        var behind: [Int] = []
        for replica in replicas {
            // The master's offset was read just before the kill: writes made since can put a replica
            // ahead of it.
            if let offset = await Self.replicationOffset(replica.port, field: "slave_repl_offset"), let masterOffset {
                behind.append(max(masterOffset - offset, 0))
            }
        }
        result.replicationBytesBehind = behind.max()
        note(
            "kill -9 of the master 127.0.0.1:\(master.port) (pid \(masterPID))"
                + (configuration.replicaHoldMilliseconds > 0 ? "; replicas resumed (SIGCONT)" : "")
                + "; replicas \(behind.map { "\($0)" }.joined(separator: " and ")) bytes of replication stream behind it")

        if let reads = await cutOffReads?.value {
            note("reads (/devices/list) while the replicas were cut off: \(Self.describe(reads)); in the last second of the warm-up: \(Self.describe(calmReads))")
            result.cutOffReadMaxSeconds = reads.map(\.elapsed.seconds).max()
            result.cutOffReads = Self.describe(reads)
        }
        result.calmReadMaxSeconds = calmReads.map(\.elapsed.seconds).max()

        await watchFailover(cluster: cluster, sentinels: sentinels, replicas: replicas, oldMaster: master.port, killed: killed, into: &result)

        try? await Task.sleep(for: configuration.afterFailover)
        await streams.stop()
        result.streams = streams.counts
        let counts = result.streams
        note(
            "streams stopped: pairings \(counts.pairingsAcknowledged) acknowledged (\(counts.pairingsInWindow) sent while the replicas were cut off),"
                + " \(counts.pairingsRefused) refused (\(counts.pairingsRefused503) HTTP 503: \(counts.refusals.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")));"
                + " rotations \(counts.rotationsAcknowledged) acknowledged (\(counts.rotationsInWindow) sent while cut off), \(counts.rotationsRefused) refused"
                + " (\(counts.rotationsPersistFailed) token_rotation_persist_failed, \(counts.rotationsRejected) session_expired);"
                + " the first pairing sent after the kill acknowledged \(counts.firstPairingAfterKill.map(Self.seconds) ?? "never") after it,"
                + " the first rotation \(counts.firstRotationAfterKill.map(Self.seconds) ?? "never")")

        // Refused rotations by phase: before the kill, while the node had not followed yet, after.
        var phases: [String: [String: Int]] = [:]
        for refusal in counts.rotationRefusals {
            let followed = result.nodeFollowSeconds.indices.contains(refusal.node) ? result.nodeFollowSeconds[refusal.node] : nil
            let phase = refusal.seconds < 0 ? "before the kill" : (followed.map { refusal.seconds < $0 } ?? true) ? "before the node followed" : "after the node followed"
            phases[phase, default: [:]][refusal.reason, default: 0] += 1
        }
        result.rotationRefusalPhases = phases
        if !phases.isEmpty { note("refused rotations: " + Self.phaseText(phases)) }

        // Everything acknowledged must still be there.
        let pairings = await streams.verifyPairings()
        result.pairingsVerified = pairings.checked
        result.pairingsLost = pairings.lost.count
        note(
            "verified \(pairings.checked) acknowledged pairings: \(pairings.lost.count) lost"
                + (pairings.lost.isEmpty ? "" : " (\(pairings.lost.prefix(3).joined(separator: "; "))\(pairings.lost.count > 3 ? "; …" : ""))"))
        let rotations = await streams.verifyRotatingPhones()
        result.rotationsVerified = rotations.checked
        result.rotationsLost = rotations.lost.count
        note(
            "verified the latest acknowledged token of \(rotations.checked) rotating phones: \(rotations.lost.count) lost"
                + (rotations.lost.isEmpty ? "" : " (\(rotations.lost.prefix(3).joined(separator: "; ")))"))

        let final = await traffic.finish()
        result.traffic = final
        result.tokenFallbacks = final.tokenFallbacks
        let devices = await streams.verify((0..<traffic.sessionCount).map { index in
            let (desktop, phone) = traffic.clients(of: index)
            return WriteStreams.Device(
                sessionID: desktop.sessionID, desktopToken: desktop.desktopSessionToken, deviceID: phone.deviceID ?? "",
                token: phone.deviceSessionToken ?? "", node: traffic.homes(of: index).phone)
        })
        result.trafficDevicesLost = devices.lost.count
        note(
            "traffic: \(final.delivered) commands acknowledged, \(final.resent) resent, \(final.lostMessages) lost, \(final.reordered) reordered;"
                + " \(final.phoneReconnects) phone reconnects (\(final.tokenFallbacks) needed the previous token); \(devices.checked - devices.lost.count)"
                + " of \(devices.checked) traffic phones authenticate with their latest token and are listed")

        let after = await scrape(cluster, nodes)
        result.masterChanges = nodes.map { Int(prometheusSampleValue(after[$0] ?? "", "relay_redis_master_changes_total")) }
        result.replicationShortfalls = Int(nodes.reduce(0.0) {
            $0 + prometheusSum(after[$1] ?? "", "relay_redis_replication_shortfalls_total") - prometheusSum(before[$1] ?? "", "relay_redis_replication_shortfalls_total")
        })
        let logs = nodes.map { cluster.logs($0) }
        result.masterChangedLogLines = logs.reduce(0) { $0 + Self.lines($1, containing: "redis_master_changed").count }
        result.switchMasterLogLines = logs.reduce(0) { $0 + Self.lines($1, containing: "redis_sentinel_switch_master").count }
        note(
            "relay_redis_master_changes_total per node: \(result.masterChanges.map(String.init).joined(separator: ", "));"
                + " relay_redis_replication_shortfalls_total +\(result.replicationShortfalls) across the nodes;"
                + " log lines: \(result.masterChangedLogLines) redis_master_changed, \(result.switchMasterLogLines) redis_sentinel_switch_master")
        if let line = Self.lines(logs[0], containing: "redis_master_changed").first { note("node 0 logged: \(line.prefix(300))") }

        check(
            "every node counts the failover", result.masterChanges.allSatisfy { $0 >= 1 },
            "relay_redis_master_changes_total \(result.masterChanges.map(String.init).joined(separator: ", "))")
        check(
            "every session still talks", final.lostSessions.isEmpty && final.lostMessages == 0 && final.reordered == 0,
            "\(traffic.sessionCount - final.lostSessions.count) of \(traffic.sessionCount) sessions completed a final round trip;"
                + " \(final.lostMessages) commands lost, \(final.reordered) reordered of \(final.sent)")
        let lostWrites = result.pairingsLost + result.rotationsLost + result.trafficDevicesLost
        if minReplicasAck >= 1 {
            if configuration.replicaHoldMilliseconds > 0 {
                check(
                    "no write sent while the replicas were cut off is acknowledged", counts.pairingsInWindow + counts.rotationsInWindow == 0,
                    "\(counts.pairingsInWindow) pairings and \(counts.rotationsInWindow) rotations acknowledged without a replica;"
                        + " relay_redis_replication_shortfalls_total +\(result.replicationShortfalls)")
            }
            check(
                "nothing acknowledged is lost", lostWrites == 0 && final.lostMessages == 0,
                "\(result.pairingsLost) of \(pairings.checked) pairings, \(result.rotationsLost) of \(rotations.checked) rotated tokens,"
                    + " \(result.trafficDevicesLost) of \(devices.checked) traffic devices, \(final.lostMessages) commands lost")
        } else {
            // Asynchronous replication: what the master acknowledged and had not passed on is gone.
            // Reported, not judged: this setting accepts that window.
            note(
                "REDIS_MIN_REPLICAS_ACK=0 lost \(result.pairingsLost) of \(pairings.checked) acknowledged pairings and \(result.rotationsLost) of"
                    + " \(rotations.checked) acknowledged rotations"
                    + (configuration.replicaHoldMilliseconds > 0
                        ? " (\(counts.pairingsInWindow) pairings and \(counts.rotationsInWindow) rotations sent while the replicas were cut off were acknowledged);"
                            + " a phone whose latest token was lost is refused with session_expired from then on and must pair again"
                        : " (the replicas were \(result.replicationBytesBehind.map(String.init) ?? "?") bytes behind at the kill: on loopback the window"
                            + " of asynchronous replication exists but is too short to catch a write in it)"))
        }

        _ = await cluster.shutdown(drainTimeout: .seconds(10))
        return result
    }

    /// `/devices/list` probes, one node after the other, for `duration`.
    private func probeReads(_ streams: WriteStreams, _ cluster: LocalCluster, for duration: Duration) async -> [(status: Int?, elapsed: Duration)] {
        let deadline = ContinuousClock.now + duration
        var probes: [(status: Int?, elapsed: Duration)] = []
        var node = 0
        while ContinuousClock.now < deadline {
            probes.append(await streams.timedDeviceList(node: node % cluster.count))
            node += 1
            try? await Task.sleep(for: .milliseconds(50))
        }
        return probes
    }

    static func describe(_ probes: [(status: Int?, elapsed: Duration)]) -> String {
        guard !probes.isEmpty else { return "none" }
        let times = probes.map { $0.elapsed.seconds * 1000 }.sorted()
        let statuses = Dictionary(grouping: probes, by: { $0.status.map(String.init) ?? "no answer" }).mapValues(\.count)
        return "\(probes.count) requests (" + statuses.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: ", ")
            + String(format: "), median %.0f ms, max %.0f ms", times[times.count / 2], times.last ?? 0)
    }

    // MARK: Failover

    /// Polls the Sentinels and every node's `/readyz` until all Sentinels name a new master and
    /// every node follows it, noting each as time since the kill.
    private func watchFailover(
        cluster: LocalCluster, sentinels: [LocalDependencyServer], replicas: [LocalDependencyServer], oldMaster: Int,
        killed: ContinuousClock.Instant, into result: inout FailoverRunResult
    ) async {
        var sentinelTimes: [Double?] = Array(repeating: nil, count: sentinels.count)
        var nodeTimes: [Double?] = Array(repeating: nil, count: cluster.count)
        var named: [Int: Int] = [:]
        var followed: [Int: String] = [:]
        let old = "127.0.0.1:\(oldMaster)"
        let deadline = killed + configuration.recoveryTimeout
        while ContinuousClock.now < deadline, sentinelTimes.contains(where: { $0 == nil }) || nodeTimes.contains(where: { $0 == nil }) {
            for (index, sentinel) in sentinels.enumerated() where sentinelTimes[index] == nil {
                let reply = await redisCommand(
                    port: sentinel.port, ["SENTINEL", "get-master-addr-by-name", Self.masterName], timeout: .milliseconds(500))
                guard let port = reply?.elements.last?.text.flatMap(Int.init), port != oldMaster else { continue }
                let after = (ContinuousClock.now - killed).seconds
                sentinelTimes[index] = after
                named[index] = port
                if result.promotionSeconds == nil {
                    result.promotionSeconds = after
                    result.promotedPort = port
                    note("Sentinel promoted 127.0.0.1:\(port): \(Self.seconds(after)) after the kill (Sentinel \(sentinel.port) names it first)")
                } else {
                    note("Sentinel \(sentinel.port) names 127.0.0.1:\(port): \(Self.seconds(after)) after the kill")
                }
            }
            for node in 0..<cluster.count where nodeTimes[node] == nil {
                let state = await Self.followedMaster(cluster, node)
                guard let master = state.master, master != old else { continue }
                let after = (ContinuousClock.now - killed).seconds
                nodeTimes[node] = after
                followed[node] = master
                note(
                    "node \(node) followed: /readyz \(state.status), redisSentinel.master \(master), masterChanges \(state.changes):"
                        + " \(Self.seconds(after)) after the kill")
            }
            try? await Task.sleep(for: .milliseconds(25))
        }
        result.sentinelSeconds = sentinelTimes
        result.nodeFollowSeconds = nodeTimes
        let replicaPorts = Set(replicas.map(\.port))
        check(
            "Sentinel promotes a replica", result.promotedPort.map(replicaPorts.contains) ?? false && named.count == sentinels.count,
            (result.promotedPort.map { "127.0.0.1:\($0) after \(Self.seconds(result.promotionSeconds ?? 0)); " } ?? "no Sentinel named a new master; ")
                + "\(named.count) of \(sentinels.count) Sentinels name it within \(configuration.recoveryTimeout.secondsText)")
        let target = result.promotedPort.map { "127.0.0.1:\($0)" }
        check(
            "every node follows the new master", followed.count == cluster.count && followed.values.allSatisfy { $0 == target },
            "\(followed.count) of \(cluster.count) nodes: "
                + (0..<cluster.count).map { n in followed[n].map { "\($0) after \(Self.seconds(nodeTimes[n] ?? 0))" } ?? "not followed" }
                .joined(separator: ", "))
    }

    // MARK: Helpers

    private func waitUntil(_ what: String, timeout: Duration, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(await condition()) {
            guard ContinuousClock.now < deadline else { throw LocalClusterError("\(what): not within \(timeout)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func scrape(_ cluster: LocalCluster, _ nodes: [Int]) async -> [Int: String] {
        var result: [Int: String] = [:]
        for node in nodes { result[node] = try? await cluster.prometheus(node) }
        return result
    }

    /// Node `index`'s `/readyz` status and its `redisSentinel` member.
    static func followedMaster(_ cluster: LocalCluster, _ index: Int) async -> (status: Int, master: String?, changes: Int) {
        guard let response = try? await cluster.node(index).http.get("/readyz", timeout: .milliseconds(500)) else { return (0, nil, 0) }
        let sentinel = (try? response.json())?["redisSentinel"]
        return (response.status, sentinel?["master"]?.stringValue, Int(sentinel?["masterChanges"]?.doubleValue ?? 0))
    }

    /// How many replicas the master at `port` lists as `state=online`.
    static func onlineReplicas(_ port: Int) async -> Int {
        guard let info = await redisCommand(port: port, ["INFO", "replication"])?.text else { return 0 }
        return lines(info, containing: "state=online").count
    }

    /// A numeric field of `INFO replication`.
    static func replicationOffset(_ port: Int, field: String) async -> Int? {
        guard let info = await redisCommand(port: port, ["INFO", "replication"], timeout: .milliseconds(500))?.text else { return nil }
        return lines(info, containing: field + ":").first.flatMap { Int($0.dropFirst(field.count + 1).trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// The Sentinel at `port` can authorize a failover with all three Sentinels and knows two
    /// healthy replicas.
    static func sentinelReady(_ port: Int) async -> Bool {
        guard let quorum = await redisCommand(port: port, ["SENTINEL", "CKQUORUM", masterName])?.text, quorum.hasPrefix("OK 3 ") else { return false }
        let replicas = await redisCommand(port: port, ["SENTINEL", "REPLICAS", masterName])?.elements ?? []
        let healthy = replicas.filter { replica in
            let fields = replica.elements.compactMap(\.text)
            guard let flags = fields.firstIndex(of: "flags").flatMap({ $0 + 1 < fields.count ? fields[$0 + 1] : nil }) else { return false }
            return flags == "slave"
        }
        return healthy.count == 2
    }

    /// "before the kill: 3 token_rotation_persist_failed; before the node followed: …".
    static func phaseText(_ phases: [String: [String: Int]]) -> String {
        ["before the kill", "before the node followed", "after the node followed"].compactMap { phase in
            phases[phase].map { "\(phase): " + $0.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") }
        }.joined(separator: "; ")
    }

    static func seconds(_ value: Double) -> String { String(format: "%.2f s", value) }

    static func lines(_ text: String, containing needle: String) -> [String] {
        text.split(whereSeparator: \.isNewline).filter { $0.contains(needle) }.map(String.init)
    }
}

extension Array {
    /// `map` with an async transform, one element at a time.
    fileprivate func asyncMap<T>(_ transform: (Element) async -> T) async -> [T] {
        var result: [T] = []
        for element in self { result.append(await transform(element)) }
        return result
    }
}

// Acknowledged traffic across a local cluster, sent the way clients send it: the engine of the
// cluster soak and of the failover drills. Each phone keeps one command in flight and resends it
// until its desktop acknowledges; when the path looks dead it reconnects (home node first, then
// the others) with its rotated token, as a phone app resyncs. Each desktop acknowledges every
// command and notes duplicates and reordering. What is counted is what clients would notice.

import Foundation
import RelayTestClient
import RelayLocalCluster

/// What cluster traffic counted.
package struct ClusterTrafficTally: Sendable {
    package var sent = 0
    package var delivered = 0
    package var resent = 0
    package var duplicates = 0
    package var reordered = 0
    package var lostMessages = 0
    package var lostSessions: [String] = []
    package var phoneReconnects = 0
    package var desktopReconnects = 0
    package var tokenFallbacks = 0
    package var churnDrops = 0

    package init() {}

    /// Nothing lost, nothing out of order, something delivered; empty when all hold.
    package var gateFailures: [String] {
        var failures: [String] = []
        if !lostSessions.isEmpty { failures.append("lost_sessions \(lostSessions.count) exceeds 0: \(lostSessions.prefix(3).joined(separator: "; "))") }
        if lostMessages > 0 { failures.append("messages_lost \(lostMessages) exceeds 0") }
        if reordered > 0 { failures.append("messages_reordered \(reordered) exceeds 0") }
        if delivered == 0 { failures.append("no message was delivered") }
        return failures
    }
}

/// How cluster traffic is shaped.
package struct ClusterTrafficConfiguration: Sendable {
    /// How many paired sessions.
    package var sessions: Int
    /// Pause between a phone's acknowledged command and its next (production rate limits apply:
    /// 240 commands per minute per device).
    package var commandInterval: Duration = .milliseconds(350)
    /// How long a phone waits for the acknowledgement before it resends; after two silent waits it
    /// reconnects.
    package var ackTimeout: Duration = .seconds(2)
    /// How long a phone keeps resending one command before it counts it lost and stops.
    package var giveUpAfter: Duration = .seconds(45)
    /// How long `finish()` tries each session's final round trip, reconnects included.
    package var finalRoundTripTimeout: Duration = .seconds(20)
    /// The phones' `Origin`.
    package var origin: String
    /// The nodes session `index` of a `nodes`-node cluster connects its desktop and its phone to
    /// first. The default puts them on different nodes.
    package var placement: @Sendable (_ index: Int, _ nodes: Int) -> (desktop: Int, phone: Int) = { index, nodes in
        (index % nodes, (index + 1) % nodes)
    }

    package init(sessions: Int, origin: String) {
        self.sessions = sessions
        self.origin = origin
    }
}

/// Paired sessions exchanging acknowledged commands across a `LocalCluster` until `finish()`.
package final class ClusterTraffic: Sendable {
    /// One session's clients and what its desktop has seen.
    final class Driver: Sendable {
        let index: Int
        let desktop: RelayDesktop
        let phone: RelayPhone
        let desktopHome: Int
        let phoneHome: Int
        /// Seqs the desktop received, the highest, and counts.
        let seen = Locked<(set: Set<UInt64>, highest: UInt64, duplicates: Int, reordered: Int)>(([], 0, 0, 0))
        /// When the phone last had a command acknowledged.
        let lastDelivered = Locked<ContinuousClock.Instant?>(nil)
        let dropRequested = Locked(false)
        let phoneDone = Locked(false)

        init(index: Int, desktop: RelayDesktop, phone: RelayPhone, desktopHome: Int, phoneHome: Int) {
            (self.index, self.desktop, self.phone, self.desktopHome, self.phoneHome) = (index, desktop, phone, desktopHome, phoneHome)
        }
    }

    /// The cluster the traffic runs on.
    package let cluster: LocalCluster
    /// Round trips from a command's first send to its acknowledgement, resends included.
    package let recorder: LatencyRecorder
    /// When the traffic started (after pairing); the recorder's origin.
    package let started: ContinuousClock.Instant
    private let configuration: ClusterTrafficConfiguration
    private let drivers: [Driver]
    private let tally = Locked(ClusterTrafficTally())
    private let stopSending = Locked(false)
    private let loops = Locked<Task<Void, Never>?>(nil)

    private init(cluster: LocalCluster, configuration: ClusterTrafficConfiguration, drivers: [Driver]) {
        self.cluster = cluster
        self.configuration = configuration
        self.drivers = drivers
        self.started = .now
        self.recorder = LatencyRecorder(started: started)
    }

    /// Pairs `configuration.sessions` sessions (each desktop and phone on the nodes the placement
    /// names) and starts their traffic.
    package static func start(on cluster: LocalCluster, _ configuration: ClusterTrafficConfiguration) async throws -> ClusterTraffic {
        let nodes = cluster.count
        var drivers: [Driver] = []
        for index in 0..<configuration.sessions {
            let (desktopHome, phoneHome) = configuration.placement(index, nodes)
            let desktop = RelayDesktop(baseURL: cluster.baseURL(desktopHome))
            let phone = RelayPhone(baseURL: cluster.baseURL(phoneHome), origin: configuration.origin)
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, phoneSocketURL: cluster.socketURL(phoneHome), deviceName: "Drill iPhone \(index)",
                idleTimeoutSeconds: 1800, drainIdle: .milliseconds(1))
            drivers.append(Driver(index: index, desktop: desktop, phone: phone, desktopHome: desktopHome, phoneHome: phoneHome))
        }
        let traffic = ClusterTraffic(cluster: cluster, configuration: configuration, drivers: drivers)
        traffic.loops.withLock { $0 = Task { await traffic.runLoops() } }
        return traffic
    }

    /// How many sessions there are.
    package var sessionCount: Int { drivers.count }

    /// Session `index`'s desktop and phone (after `finish()`, to check what the relay still
    /// knows of them: the phone's `deviceSessionToken` is the last token it was given).
    package func clients(of index: Int) -> (desktop: RelayDesktop, phone: RelayPhone) { (drivers[index].desktop, drivers[index].phone) }

    /// The nodes session `index`'s desktop and phone connected to first.
    package func homes(of index: Int) -> (desktop: Int, phone: Int) { (drivers[index].desktopHome, drivers[index].phoneHome) }

    /// The counts so far (duplicates and reordering as the desktops saw them).
    package var counts: ClusterTrafficTally {
        var counts = tally.withLock { $0 }
        for driver in drivers {
            let seen = driver.seen.withLock { ($0.duplicates, $0.reordered) }
            counts.duplicates += seen.0
            counts.reordered += seen.1
        }
        return counts
    }

    /// Asks session `index`'s phone to drop its socket and reconnect with its rotated token before
    /// its next send.
    package func dropPhone(_ index: Int) { drivers[index].dropRequested.withLock { $0 = true } }

    /// The sessions whose phone has had a command acknowledged at or after `instant`.
    package func sessionsDelivering(since instant: ContinuousClock.Instant) -> [Int] {
        drivers.filter { driver in driver.lastDelivered.withLock { $0.map { $0 >= instant } ?? false } }.map(\.index)
    }

    /// Waits until every session has had a command acknowledged at or after `instant`.
    ///
    /// - Returns: when the last of them was, or nil when `timeout` passed first.
    package func waitUntilEverySessionDelivers(since instant: ContinuousClock.Instant, timeout: Duration) async -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let times = drivers.map { driver in driver.lastDelivered.withLock { $0 } }
            if times.allSatisfy({ $0.map { $0 >= instant } ?? false }) { return times.compactMap { $0 }.max() }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Stops the senders, waits for every loop, then checks that every session still talks with one
    /// final acknowledged round trip (reconnecting as a client would), and disconnects every client.
    package func finish() async -> ClusterTrafficTally {
        stopSending.withLock { $0 = true }
        await loops.withLock { $0 }?.value
        var final = counts
        for driver in drivers where !(await finalRoundTrip(driver)) {
            final.lostSessions.append("session \(driver.index)")
        }
        let reconnects = tally.withLock { ($0.phoneReconnects, $0.desktopReconnects, $0.tokenFallbacks) }
        (final.phoneReconnects, final.desktopReconnects, final.tokenFallbacks) = reconnects
        for driver in drivers {
            await driver.phone.disconnect()
            await driver.desktop.disconnect()
        }
        return final
    }

    // MARK: - Clients

    private func socketURL(_ node: Int) -> String { cluster.socketURL(node % cluster.count) }

    /// Tries `connect` on `home`, then on the next nodes in turn, until it succeeds or `deadline`
    /// passes, as an app reconnecting through a load balancer would land somewhere else.
    private func reconnect(home: Int, deadline: ContinuousClock.Instant, _ connect: (_ url: String) async -> Bool) async -> Bool {
        var node = home
        while ContinuousClock.now < deadline {
            if await connect(socketURL(node)) { return true }
            node += 1
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Connects the desktop, home node first.
    private func reconnectDesktop(_ driver: Driver, deadline: ContinuousClock.Instant) async -> Bool {
        await reconnect(home: driver.desktopHome, deadline: deadline) { url in
            await driver.desktop.disconnect()
            guard (try? await driver.desktop.connect(url: url, authTimeout: .seconds(3))) != nil else { return false }
            tally.withLock { $0.desktopReconnects += 1 }
            return true
        }
    }

    /// Connects the phone with its current token, home node first.
    private func reconnectPhone(_ driver: Driver, deadline: ContinuousClock.Instant) async -> Bool {
        await reconnect(home: driver.phoneHome, deadline: deadline) { url in
            await driver.phone.disconnect()
            do {
                try await driver.phone.connect(url: url, authTimeout: .seconds(3))
                tally.withLock { $0.phoneReconnects += 1 }
                return true
            } catch RelayClientError.authRejected {
                // The rotated token may not have reached the store before the node died: the
                // previous one is honoured for the grace period.
                guard let previous = driver.phone.previousToken,
                    (try? await driver.phone.connect(url: url, token: previous, authTimeout: .seconds(3))) != nil
                else { return false }
                tally.withLock { $0.phoneReconnects += 1; $0.tokenFallbacks += 1 }
                return true
            } catch {
                return false
            }
        }
    }

    private func runLoops() async {
        await withTaskGroup(of: Void.self) { group in
            for driver in drivers {
                group.addTask { await self.desktopLoop(driver) }
                group.addTask { await self.phoneLoop(driver) }
            }
        }
    }

    /// Acknowledges every command and notes duplicates and order, until the phone has finished.
    private func desktopLoop(_ driver: Driver) async {
        var echoSeq: UInt64 = 0
        while !driver.phoneDone.withLock({ $0 }) {
            guard let socket = driver.desktop.currentSocket else {
                if !(await reconnectDesktop(driver, deadline: .now + .seconds(30))) { return }
                continue
            }
            guard let event = try? await socket.next(timeout: .milliseconds(250)) else { continue }
            switch event {
            case .text(let text):
                guard let frame = try? JSONValue.parse(text), frame["payload"]?["type"]?.stringValue == "command",
                    let seq = frame["seq"]?.uint64Value
                else { continue }
                driver.seen.withLock { seen in
                    if seen.set.contains(seq) {
                        seen.duplicates += 1
                    } else {
                        if seq < seen.highest { seen.reordered += 1 }
                        seen.set.insert(seq)
                        seen.highest = max(seen.highest, seq)
                    }
                }
                echoSeq += 1
                _ = try? await driver.desktop.sendEvent(seq: echoSeq, payload: ["ack": .int(Int64(seq))])
            case .close, .closed:
                if !(await reconnectDesktop(driver, deadline: .now + .seconds(30))) { return }
            default:
                continue
            }
        }
    }

    /// One command in flight, resent until acknowledged, until the senders stop.
    private func phoneLoop(_ driver: Driver) async {
        defer { driver.phoneDone.withLock { $0 = true } }
        var seq: UInt64 = 0
        while !stopSending.withLock({ $0 }) {
            seq += 1
            tally.withLock { $0.sent += 1 }
            let firstSent = ContinuousClock.now
            var attempts = 0
            var acknowledged = false
            let giveUp = firstSent + configuration.giveUpAfter
            while !acknowledged, ContinuousClock.now < giveUp {
                if driver.dropRequested.withLock({ let was = $0; $0 = false; return was }) {
                    tally.withLock { $0.churnDrops += 1 }
                    _ = await reconnectPhone(driver, deadline: .now + .seconds(30))
                }
                guard let socket = driver.phone.currentSocket else {
                    _ = await reconnectPhone(driver, deadline: .now + .seconds(30))
                    continue
                }
                attempts += 1
                if attempts > 1 { tally.withLock { $0.resent += 1 } }
                do {
                    try await driver.phone.sendCommand(
                        name: "thread.select", commandID: "drill-\(driver.index)-\(seq)",
                        fields: ["threadID": .string("thread-\(driver.index)")], seq: seq, includeTimestamp: false)
                    acknowledged = try await awaitAcknowledgement(of: seq, on: socket)
                    if !acknowledged, attempts % 2 == 0 {
                        // Two silent timeouts: the path may be dead (the desktop's node is gone). Resync.
                        _ = await reconnectPhone(driver, deadline: .now + .seconds(30))
                    }
                } catch {
                    _ = await reconnectPhone(driver, deadline: .now + .seconds(30))
                }
            }
            guard acknowledged else {
                tally.withLock { $0.lostMessages += 1 }
                return
            }
            let now = ContinuousClock.now
            recorder.record(now - firstSent, at: now)
            driver.lastDelivered.withLock { $0 = now }
            tally.withLock { $0.delivered += 1 }
            try? await Task.sleep(for: configuration.commandInterval)
        }
    }

    /// Reads the phone's socket until the desktop's acknowledgement of `seq` or the ack timeout.
    ///
    /// - Throws: when the socket ends.
    private func awaitAcknowledgement(of seq: UInt64, on socket: RelayWebSocket) async throws -> Bool {
        let deadline = ContinuousClock.now + configuration.ackTimeout
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero, let event = try await socket.next(timeout: remaining) else { return false }
            switch event {
            case .text(let text):
                if let frame = try? JSONValue.parse(text), frame["payload"]?["ack"]?.uint64Value == seq { return true }
            case .close, .closed:
                throw RelayClientError.connectionClosed("phone socket ended")
            default:
                continue
            }
        }
    }

    /// A command and its acknowledgement after the disruptions, reconnecting as a client would.
    private func finalRoundTrip(_ driver: Driver) async -> Bool {
        let deadline = ContinuousClock.now + configuration.finalRoundTripTimeout
        guard await reconnectDesktop(driver, deadline: deadline) else {
            harnessLog("[cluster-traffic] session \(driver.index): the desktop could not reconnect")
            return false
        }
        guard await reconnectPhone(driver, deadline: deadline), let desktopSocket = driver.desktop.currentSocket else {
            harnessLog("[cluster-traffic] session \(driver.index): the phone could not reconnect")
            return false
        }
        // Like a client after a resync: resend until the desktop has it (presence may take a
        // moment to reach the phone's node after both reconnected).
        let seq: UInt64 = 1_000_000
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                try await driver.phone.sendCommand(
                    name: "thread.select", commandID: "final-\(driver.index)", fields: ["threadID": .string("thread-\(driver.index)")],
                    seq: seq, includeTimestamp: false)
                try await SessionLoad.awaitCommand(seq: seq, on: desktopSocket, timeout: .seconds(2))
                return true
            } catch {
                lastError = error
            }
        }
        let phoneFrames = (try? await driver.phone.currentSocket?.drain(idle: .milliseconds(100))) ?? []
        harnessLog("[cluster-traffic] session \(driver.index): final round trip failed: \(lastError.map { "\($0)" } ?? "no time left"); phone saw \(phoneFrames)")
        return false
    }
}

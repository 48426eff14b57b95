// The writes a Redis failover puts at risk, streamed as clients make them: new pairings
// (pair/start, desktop auth, join, approve) and token rotations (every mobile auth_ok hands out
// the next token). Each acknowledgement is recorded, so that afterwards the drill can ask the
// relay whether it still knows what it acknowledged.

import Foundation
import RelayTestClient
import RelayLoadKit
import RelayLocalCluster

/// Pairing loops and rotating phones over a `LocalCluster`, until `stop()`.
final class WriteStreams: Sendable {
    /// What the streams counted.
    struct Counts: Sendable {
        var pairingsAcknowledged = 0
        var pairingsRefused = 0
        /// Refusals that were an HTTP 503 (pair/start or pair/join).
        var pairingsRefused503 = 0
        /// Refusals by step and answer (`pair/start 503 state_store_unavailable`, …).
        var refusals: [String: Int] = [:]
        var rotationsAcknowledged = 0
        var rotationsRefused = 0
        var rotationsPersistFailed = 0
        /// Auths refused with `session_expired`: the token is unknown to the store.
        var rotationsRejected = 0
        /// Sent after the replicas were cut off and acknowledged before the kill: writes no
        /// replica can have.
        var pairingsInWindow = 0
        var rotationsInWindow = 0
        /// Seconds from the kill to the first acknowledgement of a request sent after it.
        var firstPairingAfterKill: Double?
        var firstRotationAfterKill: Double?
        var phones = 0
        /// Every refused rotation: seconds since the kill (negative before it), node, and the
        /// relay's reason (`session_expired`, `token_rotation_persist_failed`, …).
        var rotationRefusals: [(seconds: Double, node: Int, reason: String)] = []
    }

    /// A device the relay acknowledged, with the last token it handed out for it.
    struct Device: Sendable {
        let sessionID: String
        let desktopToken: String
        let deviceID: String
        let token: String
        /// The node to ask first.
        let node: Int
    }

    /// A paired phone that reconnects in a loop; `phone.deviceSessionToken` is always the last
    /// token an `auth_ok` gave it.
    struct RotatingPhone: Sendable {
        let index: Int
        let desktop: RelayDesktop
        let phone: RelayPhone
        let home: Int
    }

    let cluster: LocalCluster
    let origin: String
    private let pairingStreams: Int
    private let phones: [RotatingPhone]
    private let acknowledged = Locked<[Device]>([])
    private let tally = Locked(Counts())
    private let stopping = Locked(false)
    private let cutOff = Locked<ContinuousClock.Instant?>(nil)
    private let killed = Locked<ContinuousClock.Instant?>(nil)
    private let loops = Locked<Task<Void, Never>?>(nil)

    private init(cluster: LocalCluster, origin: String, pairingStreams: Int, phones: [RotatingPhone]) {
        self.cluster = cluster
        self.origin = origin
        self.pairingStreams = pairingStreams
        self.phones = phones
        tally.withLock { $0.phones = phones.count }
    }

    /// Pairs the rotating phones (each with its desktop on another node), then starts every loop.
    static func start(on cluster: LocalCluster, origin: String, pairingStreams: Int, rotatingPhones: Int) async throws -> WriteStreams {
        var phones: [RotatingPhone] = []
        for index in 0..<rotatingPhones {
            let desktopNode = index % cluster.count, phoneNode = (index + 1) % cluster.count
            let desktop = RelayDesktop(baseURL: cluster.baseURL(desktopNode))
            let phone = RelayPhone(baseURL: cluster.baseURL(phoneNode), origin: origin)
            _ = try await RelayPairing.pairConnected(
                desktop: desktop, phone: phone, phoneSocketURL: cluster.socketURL(phoneNode), deviceName: "Rotating iPhone \(index)",
                drainIdle: .milliseconds(1))
            await phone.disconnect()
            await desktop.disconnect()
            phones.append(RotatingPhone(index: index, desktop: desktop, phone: phone, home: phoneNode))
        }
        let streams = WriteStreams(cluster: cluster, origin: origin, pairingStreams: pairingStreams, phones: phones)
        streams.loops.withLock { $0 = Task { await streams.runLoops() } }
        return streams
    }

    var counts: Counts { tally.withLock { $0 } }

    /// When the replicas were cut off from the master.
    func mark(cutOff instant: ContinuousClock.Instant) { cutOff.withLock { $0 = instant } }
    /// When the master was killed.
    func mark(kill instant: ContinuousClock.Instant) { killed.withLock { $0 = instant } }

    /// Stops every loop and waits for them (a request in flight finishes first).
    func stop() async {
        stopping.withLock { $0 = true }
        await loops.withLock { $0 }?.value
    }

    private var stopped: Bool { stopping.withLock { $0 } }

    private func runLoops() async {
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<pairingStreams { group.addTask { await self.pairingLoop(worker) } }
            for phone in phones { group.addTask { await self.rotationLoop(phone) } }
        }
    }

    /// Where an acknowledgement at `instant` of a request sent at `sent` falls: in the cut-off
    /// window (sent after the cut, so its write reached the master only), or the first of a
    /// request sent after the kill.
    private func acknowledgedAt(_ instant: ContinuousClock.Instant, sent: ContinuousClock.Instant, _ counts: inout Counts, pairing: Bool) {
        let cut = cutOff.withLock { $0 }, kill = killed.withLock { $0 }
        if let cut, sent >= cut, kill.map({ instant < $0 }) ?? true {
            if pairing { counts.pairingsInWindow += 1 } else { counts.rotationsInWindow += 1 }
        }
        if let kill, sent >= kill {
            let after = (instant - kill).seconds
            if pairing {
                if counts.firstPairingAfterKill == nil { counts.firstPairingAfterKill = after }
            } else if counts.firstRotationAfterKill == nil {
                counts.firstRotationAfterKill = after
            }
        }
    }

    // MARK: Pairings

    private func pairingLoop(_ worker: Int) async {
        var iteration = 0
        while !stopped {
            let desktopNode = (worker + iteration) % cluster.count
            iteration += 1
            if let refusal = await pairOnce(desktopNode: desktopNode, phoneNode: (desktopNode + 1) % cluster.count) {
                tally.withLock {
                    $0.pairingsRefused += 1
                    $0.refusals[refusal.reason, default: 0] += 1
                    if refusal.status == 503 { $0.pairingsRefused503 += 1 }
                }
                try? await Task.sleep(for: .milliseconds(200))
            } else {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// One whole pairing; nil when the join was acknowledged (and recorded), else why not.
    private func pairOnce(desktopNode: Int, phoneNode: Int) async -> (reason: String, status: Int?)? {
        let desktop = RelayDesktop(baseURL: cluster.baseURL(desktopNode))
        let sent = ContinuousClock.now
        let start: RelayHTTPResponse
        do {
            start = try await desktop.startPairing()
        } catch {
            return ("pair/start failed", nil)
        }
        guard start.status == 200 else { return ("pair/start \(start.status) \(start.errorCode ?? "")", start.status) }
        do {
            try await desktop.connect(url: cluster.socketURL(desktopNode), authTimeout: .seconds(3))
        } catch {
            return ("desktop auth refused", nil)
        }
        let phone = RelayPhone(baseURL: cluster.baseURL(phoneNode), origin: origin)
        let join = await joinApproved(desktop: desktop, phone: phone)
        await desktop.disconnect()
        guard let join else { return ("pair/join failed", nil) }
        guard join.status == 200, let deviceID = phone.deviceID, let token = phone.deviceSessionToken else {
            return ("pair/join \(join.status) \(join.errorCode ?? "")", join.status)
        }
        let now = ContinuousClock.now
        acknowledged.withLock {
            $0.append(Device(sessionID: desktop.sessionID, desktopToken: desktop.desktopSessionToken, deviceID: deviceID, token: token, node: phoneNode))
        }
        tally.withLock {
            $0.pairingsAcknowledged += 1
            acknowledgedAt(now, sent: sent, &$0, pairing: true)
        }
        return nil
    }

    /// `/pair/join` beside the desktop's wait for the request and its approval.
    private func joinApproved(desktop: RelayDesktop, phone: RelayPhone) async -> RelayHTTPResponse? {
        await withTaskGroup(of: RelayHTTPResponse?.self) { group in
            group.addTask {
                let response = try? await phone.join(
                    sessionID: desktop.sessionID, joinToken: desktop.joinToken, deviceName: "Failover iPhone", timeout: .seconds(15))
                // A join refused before the request reached the desktop: stop its wait.
                if response?.status != 200 { await desktop.disconnect() }
                return response
            }
            group.addTask {
                if let request = try? await desktop.nextPairRequest(timeout: .seconds(10)) {
                    try? await desktop.decide(requestID: request.requestID, approved: true)
                }
                return nil
            }
            var joined: RelayHTTPResponse?
            for await response in group where response != nil { joined = response }
            return joined
        }
    }

    // MARK: Rotations

    private func rotationLoop(_ rotating: RotatingPhone) async {
        var iteration = 0
        while !stopped {
            let node = (rotating.home + iteration) % cluster.count
            iteration += 1
            let sent = ContinuousClock.now
            do {
                try await rotating.phone.connect(url: cluster.socketURL(node), authTimeout: .seconds(3))
                let now = ContinuousClock.now
                tally.withLock {
                    $0.rotationsAcknowledged += 1
                    acknowledgedAt(now, sent: sent, &$0, pairing: false)
                }
                await rotating.phone.disconnect()
                try? await Task.sleep(for: .milliseconds(150))
            } catch {
                let text = "\(error)"
                let reason =
                    text.contains("token_rotation_persist_failed")
                    ? "token_rotation_persist_failed" : text.contains("session_expired") ? "session_expired" : "other: \(text.prefix(120))"
                let seconds = killed.withLock { $0 }.map { (ContinuousClock.now - $0).seconds } ?? -.infinity
                tally.withLock {
                    $0.rotationsRefused += 1
                    if reason == "token_rotation_persist_failed" { $0.rotationsPersistFailed += 1 }
                    if reason == "session_expired" { $0.rotationsRejected += 1 }
                    $0.rotationRefusals.append((seconds, node, reason))
                }
                // The phone keeps the token it holds: a refused auth rotated nothing it knows of.
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// `POST /devices/list` of the first rotating phone's session on `node` (a read the node
    /// makes against Redis), with its status and how long it took.
    func timedDeviceList(node: Int) async -> (status: Int?, elapsed: Duration) {
        guard let rotating = phones.first else { return (nil, .zero) }
        let desktop = RelayDesktop(
            baseURL: cluster.baseURL(node), sessionID: rotating.desktop.sessionID, desktopSessionToken: rotating.desktop.desktopSessionToken)
        let started = ContinuousClock.now
        let status = try? await desktop.listDevices().status
        return (status, ContinuousClock.now - started)
    }

    // MARK: Verification

    /// Checks every acknowledged pairing.
    func verifyPairings() async -> (checked: Int, lost: [String]) {
        await verify(acknowledged.withLock { $0 })
    }

    /// Checks the last acknowledged token of every rotating phone.
    func verifyRotatingPhones() async -> (checked: Int, lost: [String]) {
        await verify(phones.map { rotating in
            Device(
                sessionID: rotating.desktop.sessionID, desktopToken: rotating.desktop.desktopSessionToken,
                deviceID: rotating.phone.deviceID ?? "", token: rotating.phone.deviceSessionToken ?? "", node: rotating.home)
        })
    }

    /// Each device must be listed by `/devices/list` with its desktop's token, and its token must
    /// authenticate a socket on some node; eight devices at a time.
    func verify(_ devices: [Device]) async -> (checked: Int, lost: [String]) {
        var lost: [String] = []
        for start in stride(from: 0, to: devices.count, by: 8) {
            let batch = devices[start..<min(start + 8, devices.count)]
            await withTaskGroup(of: String?.self) { group in
                for device in batch { group.addTask { await self.problem(with: device) } }
                for await problem in group { if let problem { lost.append(problem) } }
            }
        }
        return (devices.count, lost)
    }

    /// Why `device` is not intact any more, or nil when it is.
    private func problem(with device: Device) async -> String? {
        let listed = await isListed(device)
        let authenticates = await authenticates(device)
        if listed == true, authenticates == nil { return nil }
        let session = String(device.sessionID.prefix(8))
        return "session \(session)…: " + [
            listed == true ? nil : (listed == false ? "device not listed" : "devices/list did not answer"),
            authenticates.map { "token refused (\($0))" },
        ].compactMap { $0 }.joined(separator: ", ")
    }

    /// Whether `/devices/list` lists the device; nil when no node answered other than 503.
    private func isListed(_ device: Device) async -> Bool? {
        for attempt in 0..<(cluster.count * 2) {
            let node = (device.node + attempt) % cluster.count
            let desktop = RelayDesktop(baseURL: cluster.baseURL(node), sessionID: device.sessionID, desktopSessionToken: device.desktopToken)
            guard let response = try? await desktop.listDevices(), response.status != 503 else {
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            guard response.status == 200, let devices = (try? response.json())?["devices"]?.arrayValue else { return false }
            return devices.contains { $0["deviceID"]?.stringValue == device.deviceID }
        }
        return nil
    }

    /// How long a transient refusal is retried when verifying: after a failover the promoted
    /// master may wait for a replica to reattach before writes are acknowledged again (1011
    /// `token_rotation_persist_failed` meanwhile), longer on a busy machine.
    static let verifyPatience: Duration = .seconds(20)

    /// Nil when the token authenticates a socket on some node, else what the relay answered.
    /// A token the store does not know (`session_expired`) is final; anything else is tried again,
    /// on the next node, for ``verifyPatience``.
    private func authenticates(_ device: Device) async -> String? {
        var last = "not tried"
        let deadline = ContinuousClock.now + Self.verifyPatience
        var attempt = 0
        while attempt < cluster.count * 2 || ContinuousClock.now < deadline {
            defer { attempt += 1 }
            let node = (device.node + attempt) % cluster.count
            let phone = RelayPhone(
                baseURL: cluster.baseURL(node), origin: origin, sessionID: device.sessionID, deviceID: device.deviceID,
                deviceSessionToken: device.token)
            do {
                try await phone.connect(url: cluster.socketURL(node), authTimeout: .seconds(3))
                await phone.disconnect()
                return nil
            } catch {
                last = "\(error)"
                if last.contains("session_expired") { return "session_expired" }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        return last
    }
}

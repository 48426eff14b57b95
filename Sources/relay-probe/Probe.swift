// The probe itself: a synthetic desktop and phone walk the whole life of a session, step by step.

import Foundation
import RelayClient
import Synchronization

/// Pairs a synthetic desktop and phone on a relay, exchanges a command and an event, rotates the
/// phone's token, revokes the phone and stops the session, timing each step. With `endToEnd`
/// (extension 12) the link carries `e2e=1`, a `secure` step waits for the phone's handshake and
/// pin, the command and the event travel sealed, and the restarted phone handshakes again (KK). The first step that
/// fails ends the probe; the session is stopped on the way out whatever happened, so probes leave
/// nothing behind.
struct Probe: Sendable {
    /// The steps, in order.
    static func stepNames(endToEnd: Bool) -> [String] {
        ["pair_start", "desktop_connect", "join", "phone_connect"] + (endToEnd ? ["secure"] : [])
            + ["command", "event", "rotate", "revoke", "stop"]
    }

    /// Every step either kind of probe runs (the metrics' labels).
    static let allStepNames = stepNames(endToEnd: true)

    /// This probe's steps.
    var stepNames: [String] { Self.stepNames(endToEnd: endToEnd) }

    let relayURL: String
    /// Where the phone joins, when it is not `relayURL` (another node of a cluster).
    let phoneRelayURL: String?
    let origin: String?
    /// Extension 12: the session is end-to-end encrypted.
    var endToEnd = false
    let configuration: RelayClientConfiguration
    /// How long one step may take.
    let stepTimeout: Duration
    /// A pause between steps (so an operator, or a drill, can watch or disturb each one).
    let pause: Duration
    /// Called as each step ends.
    let progress: @Sendable (StepResult) -> Void

    /// What the steps share.
    private final class Session: Sendable {
        let desktop: RelayDesktopClient
        let desktopEvents: EventMailbox<RelayDesktopEvent>
        let tokens = Mutex<[String]>([])
        let phone = Mutex<(client: RelayPhoneClient, events: EventMailbox<RelayPhoneEvent>, run: Task<RelayConnectionEnd, Never>)?>(nil)
        let link = Mutex<RelayJoinLink?>(nil)
        let desktopRun = Mutex<Task<RelayConnectionEnd, Never>?>(nil)

        init(desktop: RelayDesktopClient) {
            self.desktop = desktop
            self.desktopEvents = EventMailbox(desktop.events)
        }

        var currentPhone: (client: RelayPhoneClient, events: EventMailbox<RelayPhoneEvent>, run: Task<RelayConnectionEnd, Never>) {
            get throws {
                guard let phone = phone.withLock({ $0 }) else { throw ProbeFailure("no phone: an earlier step did not make one") }
                return phone
            }
        }
    }

    func run() async -> ProbeResult {
        let startedAt = Date()
        let session = Session(desktop: RelayDesktopClient(
            relayURL: relayURL, identity: .generate(), configuration: configuration, endToEnd: endToEnd ? .generate() : nil))
        var results: [StepResult] = []
        for (index, name) in stepNames.enumerated() {
            if index > 0, pause > .zero { try? await Task.sleep(for: pause) }
            let started = ContinuousClock.now
            var failure: String?
            do {
                try await withDeadline(stepTimeout, step: name) { try await perform(name, session) }
            } catch {
                failure = "\(error)"
            }
            let result = StepResult(name: name, duration: ContinuousClock.now - started, error: failure)
            results.append(result)
            progress(result)
            if failure != nil { break }
        }
        await cleanUp(session, stopped: results.last?.name == "stop" && results.last?.succeeded == true)
        let skipped = Array(stepNames.dropFirst(results.count))
        return ProbeResult(relayURL: relayURL, startedAt: startedAt, steps: results, skipped: skipped)
    }

    private func perform(_ step: String, _ session: Session) async throws {
        let desktop = session.desktop
        switch step {
        case "pair_start":
            let link = try await desktop.startPairing(lifetime: .seconds(120))
            if endToEnd, link.endToEnd == nil { throw ProbeFailure("the join link carries no e2e=1") }
            session.link.withLock { $0 = link }
        case "desktop_connect":
            session.desktopRun.withLock { $0 = Task { await desktop.run() } }
            try await expect(session.desktopEvents, "the desktop's auth_ok") { if case .connected = $0 { true } else { false } }
        case "join":
            guard var link = session.link.withLock({ $0 }) else { throw ProbeFailure("no join link") }
            if let phoneRelayURL { link.relayBaseURL = phoneRelayURL }
            let approval = Task {
                let request = try await expect(session.desktopEvents, "a pairing request") {
                    if case .pairingRequest = $0 { true } else { false }
                }
                guard case .pairingRequest(let pairing) = request else { return }
                try await desktop.decide(pairing, approve: true)
            }
            defer { approval.cancel() }
            let record: @Sendable (RelayPhoneCredentials) -> Void = { credentials in
                session.tokens.withLock { $0.append(credentials.deviceSessionToken) }
            }
            let joined = try await RelayPhoneClient.join(
                link, deviceName: "relay-probe", origin: origin, configuration: configuration, timeout: stepTimeout,
                onCredentialsChanged: record)
            try await approval.value
            // The join names the session's WebSocket URL (the desktop's node); a phone probing
            // another node connects to that node's own.
            var phone = joined
            if let phoneRelayURL, var credentials = joined.credentials {
                credentials.wsURL = RelayEndpoint.defaultWebSocketURL(baseURL: phoneRelayURL)
                phone = RelayPhoneClient(
                    relayURL: phoneRelayURL, credentials: credentials, origin: origin, configuration: configuration,
                    onCredentialsChanged: record)
            }
            let client = phone
            let events = EventMailbox(client.events)
            session.phone.withLock { $0 = (client, events, Task { await client.run() }) }
        case "phone_connect":
            let phone = try session.currentPhone
            let connected = try await expect(phone.events, "the phone's auth_ok") { if case .connected = $0 { true } else { false } }
            if case .connected(false) = connected {
                try await expect(phone.events, "the desktop online for the phone") {
                    if case .desktopStatus(true) = $0 { true } else { false }
                }
            }
        case "secure":
            // The phone's IKpsk2 handshake completes, then its first sealed frame gets it pinned.
            let phone = try session.currentPhone
            try await expect(phone.events, "the phone's end-to-end handshake") {
                if case .endToEnd(.secured) = $0 { true } else { false }
            }
            try await expect(session.desktopEvents, "the phone pinned by the desktop") {
                if case .endToEnd(.pinned) = $0 { true } else { false }
            }
        case "command":
            let phone = try session.currentPhone
            let commandID = try await phone.client.send(.selectThread(threadID: "relay-probe"))
            try await expect(session.desktopEvents, "command \(commandID) at the desktop") {
                if case .command(let command) = $0 { command.commandID == commandID } else { false }
            }
        case "event":
            let phone = try session.currentPhone
            let seq = try await desktop.send(.event, payload: ["probe": "relay-probe"])
            let received = try await expect(phone.events, "envelope \(seq) at the phone") {
                if case .envelope(let envelope) = $0 { envelope.seq == seq } else { false }
            }
            if endToEnd, case .envelope(let envelope) = received {
                guard envelope.text.contains(#""type":"sealed""#), envelope.payload["probe"]?.stringValue == "relay-probe" else {
                    throw ProbeFailure("envelope \(seq) did not arrive sealed and open to its payload")
                }
            }
        case "rotate":
            // The app restarts from what it stored: a new connection, a new token.
            let old = try session.currentPhone
            guard let stored = old.client.credentials else { throw ProbeFailure("the phone has no credentials") }
            await old.client.close()
            _ = await endOf(old.run)
            let before = session.tokens.withLock { $0.count }
            let phone = RelayPhoneClient(
                relayURL: phoneRelayURL ?? relayURL, credentials: stored, origin: origin, configuration: configuration
            ) { credentials in session.tokens.withLock { $0.append(credentials.deviceSessionToken) } }
            let events = EventMailbox(phone.events)
            session.phone.withLock { $0 = (phone, events, Task { await phone.run() }) }
            try await expect(events, "the restarted phone's auth_ok") { if case .connected = $0 { true } else { false } }
            if endToEnd {
                try await expect(events, "the restarted phone's KK handshake") { if case .endToEnd(.secured) = $0 { true } else { false } }
            }
            let rotated = session.tokens.withLock { Array($0.dropFirst(before)) }
            guard let token = rotated.last, token != stored.deviceSessionToken else {
                throw ProbeFailure("the relay did not issue a new token on reconnect")
            }
        case "revoke":
            let phone = try session.currentPhone
            guard let deviceID = phone.client.credentials?.deviceID else { throw ProbeFailure("the phone has no device id") }
            try await desktop.revokeDevice(deviceID)
            let end = await endOf(phone.run)
            guard end == .ended(reason: "device_revoked") else { throw ProbeFailure("the revoked phone ended with \(end)") }
        case "stop":
            try await desktop.stopSession()
            guard let run = session.desktopRun.withLock({ $0 }) else { throw ProbeFailure("the desktop never ran") }
            let end = await endOf(run)
            guard end == .ended(reason: "stopped_by_desktop") else { throw ProbeFailure("the stopped desktop ended with \(end)") }
        default:
            throw ProbeFailure("unknown step \(step)")
        }
    }

    /// Stops the session unless the probe did, and closes both clients.
    private func cleanUp(_ session: Session, stopped: Bool) async {
        if !stopped { try? await withDeadline(stepTimeout, step: "clean-up") { try await session.desktop.stopSession() } }
        if let phone = session.phone.withLock({ $0 }) {
            await phone.client.close()
            _ = await phone.run.value
        }
        await session.desktop.close()
        if let run = session.desktopRun.withLock({ $0 }) { _ = await run.value }
    }

    /// The first event `match` accepts, or a failure naming `what` when the step's deadline
    /// (task cancellation) or the end of the stream comes first.
    @discardableResult
    private func expect<Event>(_ mailbox: EventMailbox<Event>, _ what: String, _ match: @escaping @Sendable (Event) -> Bool) async throws -> Event {
        guard let event = await mailbox.next(match) else { throw ProbeFailure("no \(what)") }
        return event
    }
}

/// How a client's `run()` ended; cancelling the waiter (a step's deadline) cancels the run, which
/// then returns at once, so no wait outlives its step.
func endOf(_ run: Task<RelayConnectionEnd, Never>) async -> RelayConnectionEnd {
    await withTaskCancellationHandler { await run.value } onCancel: { run.cancel() }
}

/// Runs `body`, cancelling it after `timeout`; a timeout throws ``ProbeFailure`` naming the step.
func withDeadline(_ timeout: Duration, step: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            try await body()
            return true
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return false
        }
        do {
            let finished = try await group.next() ?? false
            group.cancelAll()
            if !finished { throw ProbeFailure("\(step) did not finish within \(timeout)") }
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// Why a step failed, as a sentence.
struct ProbeFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

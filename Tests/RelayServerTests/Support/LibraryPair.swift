import NIOPosix
import RelayTestClient
import RelayTestSupport
import Synchronization

/// A desktop and a phone of the client library, paired through the relay at `relayURL` and both
/// running, with their events collected and every credential the phone reported.
final class LibraryPair: Sendable {
    let desktop: RelayDesktopClient
    let desktopEvents: EventLog<RelayDesktopEvent>
    let desktopRun: Task<RelayConnectionEnd, Never>
    let phone: RelayPhoneClient
    let phoneEvents: EventLog<RelayPhoneEvent>
    let phoneRun: Task<RelayConnectionEnd, Never>
    /// What `onCredentialsChanged` received, in order.
    let storedCredentials: Recorder<RelayPhoneCredentials>

    private init(
        desktop: RelayDesktopClient, desktopEvents: EventLog<RelayDesktopEvent>, desktopRun: Task<RelayConnectionEnd, Never>,
        phone: RelayPhoneClient, phoneEvents: EventLog<RelayPhoneEvent>, phoneRun: Task<RelayConnectionEnd, Never>,
        storedCredentials: Recorder<RelayPhoneCredentials>
    ) {
        self.desktop = desktop
        self.desktopEvents = desktopEvents
        self.desktopRun = desktopRun
        self.phone = phone
        self.phoneEvents = phoneEvents
        self.phoneRun = phoneRun
        self.storedCredentials = storedCredentials
    }

    /// The configuration tests use: a short backoff so reconnects happen within a test, on
    /// NIOPosix's shared loops.
    static func configuration(tls: RelayTLS = .system) -> RelayClientConfiguration {
        RelayClientConfiguration(
            tls: tls, reconnect: RelayReconnectPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1)),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
    }

    /// Starts a session on the desktop, joins the phone through the join link's text (as a QR
    /// scanner would hand it over), approves it, and waits until both are connected (and, with
    /// `endToEnd` keys, until the phone is secured and pinned).
    static func make(
        relayURL: String, origin: String? = nil, configuration: RelayClientConfiguration = LibraryPair.configuration(),
        grant: DeviceGrant? = nil, endToEnd: RelayDesktopEndToEndKeys? = nil, identity: RelayDesktopIdentity = .generate()
    ) async throws -> LibraryPair {
        let desktop = RelayDesktopClient(relayURL: relayURL, identity: identity, configuration: configuration, endToEnd: endToEnd)
        let link = try await desktop.startPairing()
        let desktopEvents = EventLog(desktop.events)
        let desktopRun = Task { await desktop.run() }
        try await desktopEvents.first { if case .connected = $0 { true } else { nil } }
        let approver = Task {
            let request = try await desktopEvents.first { if case .pairingRequest(let request) = $0 { request } else { nil } }
            try await desktop.decide(request, approve: true, grant: grant)
        }
        let stored = Recorder<RelayPhoneCredentials>()
        let scanned = try RelayJoinLink(parsing: link.link(page: "https://app.example/pair"))
        let phone = try await RelayPhoneClient.join(
            scanned, deviceName: "Ana's iPhone", origin: origin, configuration: configuration
        ) { credentials in stored.append(credentials) }
        try await approver.value
        let phoneEvents = EventLog(phone.events)
        let phoneRun = Task { await phone.run() }
        try await phoneEvents.first { if case .connected = $0 { true } else { nil } }
        if endToEnd != nil {
            // Extension 12: the phone's IKpsk2 handshake, then its hello pins it on the desktop.
            try await phoneEvents.first { if case .endToEnd(.secured) = $0 { true } else { nil } }
            // A view phone cannot send sealed frames, so it stays bound to its pairing secret.
            if grant?.scope == .view {
                try await desktopEvents.first { if case .endToEnd(.secured) = $0 { true } else { nil } }
            } else {
                try await desktopEvents.first { if case .endToEnd(.pinned) = $0 { true } else { nil } }
            }
        }
        return LibraryPair(
            desktop: desktop, desktopEvents: desktopEvents, desktopRun: desktopRun, phone: phone, phoneEvents: phoneEvents,
            phoneRun: phoneRun, storedCredentials: stored)
    }

    /// A command from the phone reaches the desktop, and an event from the desktop reaches the
    /// phone; returns once both have arrived.
    func exchangeTraffic(_ label: String) async throws {
        let commandID = try await phone.send(.sendMessage(threadID: "thread-1", text: "hello \(label)"))
        let received = try await desktopEvents.first { event -> RelayIncomingCommand? in
            if case .command(let command) = event, command.commandID == commandID { command } else { nil }
        }
        guard received.command == .sendMessage(threadID: "thread-1", text: "hello \(label)") else {
            throw TestFailure("the desktop received \(received)")
        }
        let seq = try await desktop.send(.event, payload: ["label": .string(label)])
        try await phoneEvents.first { event -> Bool? in
            if case .envelope(let envelope) = event, envelope.seq == seq, envelope.payload["label"]?.stringValue == label { true } else { nil }
        }
    }

    /// Closes both clients and waits for their runs to end.
    func close() async {
        await phone.close()
        await desktop.close()
        _ = await phoneRun.value
        _ = await desktopRun.value
    }
}

/// Values a callback reported, in order.
final class Recorder<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])
    func append(_ value: Value) { values.withLock { $0.append(value) } }
    var all: [Value] { values.withLock { $0 } }
}

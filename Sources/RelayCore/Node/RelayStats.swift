// The node's counters and gauges: the reference /metricsz fields and the Prometheus series.

import Metrics
import RelayProtocol
import Synchronization

/// The node's counters: the reference `/metricsz` JSON fields (atomics, read at scrape time) and
/// their swift-metrics twins for Prometheus (`relay_*`, DECISIONS "Metrics and health").
public final class RelayStats: Sendable {
    let activeWebSockets = Atomic<Int>(0)
    let pendingJoinWaiters = Atomic<Int>(0)
    let outboundSendFailures = Atomic<Int>(0)
    let slowConsumerDisconnects = Atomic<Int>(0)
    let pairStartRequests = Atomic<Int>(0)
    let pairStartSuccesses = Atomic<Int>(0)
    let pairJoinRequests = Atomic<Int>(0)
    let pairJoinSuccesses = Atomic<Int>(0)
    let pairRefreshRequests = Atomic<Int>(0)
    let pairRefreshSuccesses = Atomic<Int>(0)
    let wsAuthAttempts = Atomic<Int>(0)
    let wsAuthSuccesses = Atomic<Int>(0)
    private let authFailures = Mutex<[AuthFailureReason: Int]>([:])

    private let outboundSendFailuresCounter = Counter(label: "relay_outbound_send_failures_total")
    private let slowConsumerCounter = Counter(label: "relay_slow_consumer_disconnects_total")
    private let wsAuthAttemptsCounter = Counter(label: "relay_ws_auth_attempts_total")
    private let wsAuthSuccessesCounter = Counter(label: "relay_ws_auth_successes_total")
    private let authFailureCounters: [Counter]
    private let disconnectCounters: [Counter]
    private let mobileErrorCounters: [Counter]
    private let pairRequestCounters: [PairEndpoint: Counter]
    private let pairSuccessCounters: [PairEndpoint: Counter]
    private let pairJoinFailureCounters: [HTTPErrorCode: Counter]
    private let mobileToDesktopCounter = Counter(label: "relay_ws_messages_total", dimensions: [("direction", "mobile_to_desktop")])
    private let desktopToMobileCounter = Counter(label: "relay_ws_messages_total", dimensions: [("direction", "desktop_to_mobile")])
    private let approvalWaitTimer = Metrics.Timer(label: "relay_pair_approval_wait_seconds")
    private let presenceFailureCounter = Counter(label: "relay_presence_store_failures_total")
    private let leaseLapseCounter = Counter(label: "relay_presence_lease_lapses_total")
    private let remoteDesktopLapseCounter = Counter(label: "relay_presence_remote_desktop_lapses_total")
    private let scopeDeniedViewCounter = Counter(label: "relay_scope_denied_commands_total", dimensions: [("reason", "view_only")])
    private let scopeDeniedCommandCounter = Counter(label: "relay_scope_denied_commands_total", dimensions: [("reason", "command_not_allowed")])
    private let grantsExpiredCounter = Counter(label: "relay_device_grants_expired_total")
    private let scopeChangesCounter = Counter(label: "relay_device_scope_changes_total")
    private let historyRecordedCounter = Counter(label: "relay_history_frames_recorded_total")
    private let historyWriteFailuresCounter = Counter(label: "relay_history_write_failures_total")
    private let historyReplayCompleteCounter = Counter(label: "relay_history_replays_total", dimensions: [("outcome", "complete")])
    private let historyReplayIncompleteCounter = Counter(label: "relay_history_replays_total", dimensions: [("outcome", "incomplete")])
    private let historyReplayedFramesCounter = Counter(label: "relay_history_frames_replayed_total")
    private let sealedFramesCounter = Counter(label: "relay_e2e_sealed_frames_total")
    private let handshakeCounters = Dictionary(uniqueKeysWithValues: NoisePatternName.allCases.map {
        ($0, Counter(label: "relay_e2e_handshake_messages_total", dimensions: [("pattern", $0.rawValue)]))
    })
    /// Refusals of end-to-end frames (and of plaintext commands by `E2E_MODE=required`), by the
    /// `relay.error` code; every code registered up front.
    private let endToEndRefusalCounters = Dictionary(uniqueKeysWithValues: MobileErrorCode.allCases.map {
        ($0, Counter(label: "relay_e2e_refusals_total", dimensions: [("reason", $0.rawValue)]))
    })
    /// Frames and bytes the in-memory histories of this node hold (extension 11, one node).
    let historyFrames = Atomic<Int>(0)
    let historyBytes = Atomic<Int>(0)

    /// The three endpoints with request/success counters (label `operation`: Prometheus Operator
    /// scrapes own the `endpoint` label and would rename ours to `exported_endpoint`).
    public enum PairEndpoint: String, Sendable, CaseIterable {
        case start, join, refresh
    }

    /// Counters at zero, with every labelled Prometheus series registered up front.
    public init() {
        authFailureCounters = AuthFailureReason.allCases.map {
            Counter(label: "relay_ws_auth_failures_total", dimensions: [("reason", $0.rawValue)])
        }
        disconnectCounters = DisconnectReason.allCases.map {
            Counter(label: "relay_ws_disconnects_total", dimensions: [("reason", $0.rawValue)])
        }
        mobileErrorCounters = MobileErrorCode.allCases.map {
            Counter(label: "relay_mobile_errors_total", dimensions: [("code", $0.rawValue)])
        }
        var requests: [PairEndpoint: Counter] = [:]
        var successes: [PairEndpoint: Counter] = [:]
        for endpoint in PairEndpoint.allCases {
            requests[endpoint] = Counter(label: "relay_pair_requests_total", dimensions: [("operation", endpoint.rawValue)])
            successes[endpoint] = Counter(label: "relay_pair_successes_total", dimensions: [("operation", endpoint.rawValue)])
        }
        pairRequestCounters = requests
        pairSuccessCounters = successes
        // Every code up front, so a failure alert has a series to read before the first failure.
        pairJoinFailureCounters = Dictionary(uniqueKeysWithValues: HTTPErrorCode.allCases.map {
            ($0, Counter(label: "relay_pair_join_failures_total", dimensions: [("code", $0.rawValue)]))
        })
    }

    func pairRequest(_ endpoint: PairEndpoint) {
        switch endpoint {
        case .start: pairStartRequests.add(1, ordering: .relaxed)
        case .join: pairJoinRequests.add(1, ordering: .relaxed)
        case .refresh: pairRefreshRequests.add(1, ordering: .relaxed)
        }
        pairRequestCounters[endpoint]?.increment()
    }

    func pairSuccess(_ endpoint: PairEndpoint) {
        switch endpoint {
        case .start: pairStartSuccesses.add(1, ordering: .relaxed)
        case .join: pairJoinSuccesses.add(1, ordering: .relaxed)
        case .refresh: pairRefreshSuccesses.add(1, ordering: .relaxed)
        }
        pairSuccessCounters[endpoint]?.increment()
    }

    /// Counts a `/pair/join` that ended in an error response, by its `error` code.
    func pairJoinFailure(_ code: HTTPErrorCode) {
        pairJoinFailureCounters[code]?.increment()
    }

    /// Counts one WebSocket upgrade that reached the handler.
    public func authAttempt() {
        wsAuthAttempts.add(1, ordering: .relaxed)
        wsAuthAttemptsCounter.increment()
    }

    func authSuccess() {
        wsAuthSuccesses.add(1, ordering: .relaxed)
        wsAuthSuccessesCounter.increment()
    }

    /// Counts a WebSocket auth failure by reason.
    public func authFailure(_ reason: AuthFailureReason) {
        authFailures.withLock { $0[reason, default: 0] += 1 }
        authFailureCounters[AuthFailureReason.allCases.firstIndex(of: reason)!].increment()
    }

    /// Counts a disconnect the relay initiated, by reason.
    public func disconnect(_ reason: DisconnectReason) {
        disconnectCounters[DisconnectReason.allCases.firstIndex(of: reason)!].increment()
    }

    func forwarded(fromMobile: Bool) {
        (fromMobile ? mobileToDesktopCounter : desktopToMobileCounter).increment()
    }

    func approvalWait(nanoseconds: UInt64) {
        approvalWaitTimer.recordNanoseconds(Int64(clamping: nanoseconds))
    }

    func mobileError(_ code: MobileErrorCode) {
        mobileErrorCounters[MobileErrorCode.allCases.firstIndex(of: code)!].increment()
    }

    /// A command refused by the device's grant (extension 10): a `view` device's, or one outside
    /// its `allowedCommands`.
    func scopeDenied(view: Bool) { (view ? scopeDeniedViewCounter : scopeDeniedCommandCounter).increment() }

    /// Sockets this node closed with `device_expired` because their device's grant ended.
    func grantExpired(sockets: Int) { grantsExpiredCounter.increment(by: sockets) }

    /// A `POST /devices/scope` that changed a device's grant.
    func scopeChanged() { scopeChangesCounter.increment() }

    /// Frames and bytes this node's in-memory histories hold now (zero with a shared store).
    public var historyRetained: (frames: Int, bytes: Int) {
        (historyFrames.load(ordering: .relaxed), historyBytes.load(ordering: .relaxed))
    }

    /// Extension 11: a desktop envelope recorded (in memory, or queued for the shared store).
    func historyRecorded() { historyRecordedCounter.increment() }
    /// A history write the shared store did not take: resumes over it report `complete: false`.
    func historyWriteFailed() { historyWriteFailuresCounter.increment() }
    /// The in-memory histories grew or shrank.
    func historyChanged(frames: Int, bytes: Int) {
        if frames != 0 { historyFrames.add(frames, ordering: .relaxed) }
        if bytes != 0 { historyBytes.add(bytes, ordering: .relaxed) }
    }
    /// A resume answered: `frames` replayed, complete or not.
    func replayed(frames: Int, complete: Bool) {
        (complete ? historyReplayCompleteCounter : historyReplayIncompleteCounter).increment()
        if frames > 0 { historyReplayedFramesCounter.increment(by: frames) }
    }

    /// Extension 12: a phone's `sealed` envelope forwarded to the desktop.
    func sealedForwarded() { sealedFramesCounter.increment() }
    /// Extension 12: a phone's `noise` handshake message forwarded to the desktop.
    func handshakeForwarded(_ pattern: NoisePatternName) { handshakeCounters[pattern]?.increment() }
    /// Extension 12: an end-to-end frame refused, or a plaintext command refused as `e2e_required`.
    func endToEndRefused(_ code: MobileErrorCode) { endToEndRefusalCounters[code]?.increment() }

    /// A presence claim, release or read the store did not answer.
    func presenceFailure() { presenceFailureCounter.increment() }

    /// This node found its own lease lapsed (other nodes may have dropped its claims) and claimed
    /// everything it holds again.
    func leaseLapse() { leaseLapseCounter.increment() }

    /// Sessions whose desktop's node stopped renewing its lease: their phones here were told the
    /// desktop is offline.
    func remoteDesktopLapse(sessions: Int) { remoteDesktopLapseCounter.increment(by: sessions) }

    /// Counts a failed enqueue; `slowConsumer` also counts the disconnect it causes.
    public func sendFailure(slowConsumer: Bool) {
        outboundSendFailures.add(1, ordering: .relaxed)
        outboundSendFailuresCounter.increment()
        if slowConsumer {
            slowConsumerDisconnects.add(1, ordering: .relaxed)
            slowConsumerCounter.increment()
        }
    }

    /// Auth failures by reason, only those that occurred.
    public var authFailureReasons: [(AuthFailureReason, Int)] {
        let counts = authFailures.withLock { $0 }
        return AuthFailureReason.allCases.compactMap { reason in counts[reason].map { (reason, $0) } }
    }
}

// Received messages on libnats's delivery threads: checked, then handed to the core.

import Logging
import RelayCore
import Synchronization

/// Receives every subscription's messages on libnats's delivery threads and hands accepted
/// envelopes to the core.
///
/// libnats assigns each subscription to one delivery thread and calls it with that
/// subscription's messages one at a time, in arrival order. The core's handler is synchronous and
/// does not block, so it is called right there: that keeps per-subject order without a hop.
///
/// Each subscription holds one retain of this object as its callback closure, given back in the
/// subscription's completion callback, which libnats makes after the subscription is closed and
/// its last message callback has returned.
final class Inbound: Sendable {
    let pipeline: ReceivePipeline
    private let handler: @Sendable (BusEnvelope) -> Void
    private let wanted: WantedSessions
    private let metrics: NATSBusMetrics
    private let logger: Logger
    private let limiter: LogRateLimiter
    private let stopped = Atomic<Bool>(false)
    /// Subscriptions whose completion callback has not come yet.
    private let openSubscriptions = Atomic<Int>(0)

    init(
        pipeline: ReceivePipeline, handler: @escaping @Sendable (BusEnvelope) -> Void, wanted: WantedSessions,
        metrics: NATSBusMetrics, logger: Logger, limiter: LogRateLimiter
    ) {
        self.pipeline = pipeline
        self.handler = handler
        self.wanted = wanted
        self.metrics = metrics
        self.logger = logger
        self.limiter = limiter
    }

    /// One message's bytes, already copied out of libnats's message.
    func receive(_ bytes: [UInt8]) {
        guard !stopped.load(ordering: .acquiring) else { return }
        metrics.received()
        let now = wallClockMillis()
        switch pipeline.check(bytes, now: now) {
        case .accept(let envelope):
            let sessionTraffic = envelope.target.isSessionTraffic
            // Unsubscribing is asynchronous; what is still in flight for a session no longer
            // wanted is not this node's any more.
            if sessionTraffic && !wanted.contains(envelope.sessionID) { return }
            metrics.delivered(sessionTraffic: sessionTraffic, issuedAtMillis: envelope.issuedAtMillis, now: now)
            handler(envelope)
        case .own:
            return
        case .reject(let reason):
            metrics.rejected(reason)
            limiter.log(logger, .warning, kind: "rejected.\(reason.rawValue)", "nats_envelope_rejected", metadata: ["reason": "\(reason.rawValue)"])
        }
    }

    /// No more deliveries to the core.
    func stop() { stopped.store(true, ordering: .releasing) }

    var subscriptionsNotCompleted: Int { openSubscriptions.load(ordering: .acquiring) }

    /// The closure for one more subscription (one retain, see the type's comment).
    func retainForSubscription() -> UnsafeMutableRawPointer {
        openSubscriptions.add(1, ordering: .relaxed)
        return Unmanaged.passRetained(self).toOpaque()
    }

    /// Stops waiting for a subscription whose completion callback cannot be installed; its retain
    /// is kept for good.
    func abandonSubscription() { openSubscriptions.subtract(1, ordering: .releasing) }

    /// Gives back a subscription's retain (after its completion, or when it never came to be).
    static func releaseSubscription(_ closure: UnsafeMutableRawPointer) {
        let inbound = Unmanaged<Inbound>.fromOpaque(closure).takeRetainedValue()
        inbound.openSubscriptions.subtract(1, ordering: .releasing)
    }
}

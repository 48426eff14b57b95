// What the receive pipeline decides about one message: deliver, own, or reject and why.

import RelayCore

/// What the pipeline decided about one message.
enum ReceiveVerdict: Sendable, Equatable {
    /// Deliver it.
    case accept(BusEnvelope)
    /// This node published it (not a rejection: NATS echoes publications to their publisher).
    case own
    /// Drop it, counted under `reason`.
    case reject(NATSRejectionReason)
}

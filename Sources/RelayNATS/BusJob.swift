// The work the NATS bus thread takes from its queue, in the order it must happen.

import RelayCore

/// Work for the bus thread, in the order it must happen.
enum BusJob: Sendable {
    case publish(BusEnvelope)
    /// Make the subscription of `sessionID` match ``WantedSessions``.
    case reconcile(sessionID: String)
    case flush(timeoutMillis: Int64, CheckedContinuation<Bool, Never>)
    /// libnats closed connection number `generation` by itself.
    case connectionClosed(generation: Int)
    case shutdown
}

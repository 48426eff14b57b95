// What a desktop app hears from its connection, in order.

/// One thing that happened on a desktop's connection; ``RelayDesktopClient/events`` delivers them
/// in order.
public enum RelayDesktopEvent: Sendable, Equatable {
    /// Authenticated (again).
    case connected
    /// A phone is waiting in `/pair/join`: show its name and answer with
    /// ``RelayDesktopClient/decide(_:approve:)``.
    case pairingRequest(RelayPairingRequest)
    /// The relay recorded a decision (`approved` echoes it).
    case pairingResult(requestID: String, approved: Bool)
    /// How many phones are connected (as counted by the node that reports it).
    case deviceCount(Int)
    /// A command from a phone.
    case command(RelayIncomingCommand)
    /// A phone asks for a snapshot: send a `snapshot` envelope.
    case snapshotRequest(RelaySnapshotRequest)
    /// A frame this version does not know.
    case unrecognized(String)
    /// End-to-end encryption (extension 12): a phone secured or pinned, a frame refused.
    case endToEnd(RelayEndToEndEvent)
    /// The connection ended; ``RelayDisconnection/reconnectDelay`` says whether and when the
    /// client connects again.
    case disconnected(RelayDisconnection)
}

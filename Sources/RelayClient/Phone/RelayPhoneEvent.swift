// What a phone app hears from its connection, in order.

import RelayProtocol

/// One thing that happened on a phone's connection; ``RelayPhoneClient/events`` delivers them in
/// order.
public enum RelayPhoneEvent: Sendable, Equatable {
    /// Authenticated (again): the relay accepted the stored token and issued the next one
    /// (``credentialsChanged(_:)`` came first). `desktopConnected` says whether commands can be
    /// delivered now.
    case connected(desktopConnected: Bool)
    /// What the desktop allows this phone (extension 10): after ``connected(desktopConnected:)``
    /// when the phone has a grant, and whenever the desktop changes it. A `view` grant refuses
    /// commands with `scope_denied`; one with an end closes the connection with `device_expired`.
    case grant(DeviceGrant)
    /// The relay replayed what this phone missed while away (extension 11): the envelopes from
    /// `fromSeq` to `toSeq` came as ``envelope(_:)`` events just before. When not `complete`, some
    /// were no longer kept, and the client has asked the desktop for a snapshot.
    case resumed(fromSeq: UInt64, toSeq: UInt64, complete: Bool)
    /// The desktop came online or went away.
    case desktopStatus(connected: Bool)
    /// An envelope from the desktop (`hello`, `snapshot`, `event`, `command_ack`).
    case envelope(RelayEnvelope)
    /// Envelopes were missed: one arrived with `received` where `expected` was due. The client has
    /// asked the desktop for a snapshot, which replaces the phone's state when it comes.
    case sequenceGap(expected: UInt64, received: UInt64)
    /// The relay refused something this phone sent; the connection stays up.
    case relayError(RelayErrorMessage)
    /// New credentials to store (a token rotation); the same value the client's callback got.
    case credentialsChanged(RelayPhoneCredentials)
    /// A desktop frame that is not an envelope (the relay forwards anything the desktop sends);
    /// on an end-to-end session such a frame is refused instead (``endToEnd(_:)``).
    case unrecognized(String)
    /// End-to-end encryption (extension 12): secured, rekeyed, or a frame refused.
    case endToEnd(RelayEndToEndEvent)
    /// The connection ended; ``RelayDisconnection/reconnectDelay`` says whether and when the
    /// client connects again.
    case disconnected(RelayDisconnection)
}

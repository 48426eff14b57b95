// The core's handle on one authenticated socket the transport holds.

import RelayProtocol

/// What the transport gives the core for one authenticated socket.
///
/// Implementations must never call back into the core synchronously from these methods (the core
/// may hold a session's lock while calling them): closing happens later, on the socket's own
/// context, and its cleanup reaches the core from there.
public protocol RelayConnection: AnyObject, Sendable {
    /// The relay-assigned connection id (`relayConnectionID`).
    var connectionID: String { get }
    /// Enqueues one text frame without waiting. `.full` means the socket's bounded outbound queue
    /// is full: the caller decides whether that makes it a slow consumer.
    func send(_ text: [UInt8]) -> SendResult
    /// Ends the socket: the `disconnect` text for `reason` (if any), a close frame with the
    /// reason's close code, then the TCP close. Idempotent.
    func terminate(_ reason: DisconnectReason?)
    /// How many more frames ``send(_:)`` would queue now (a resume's replay paces itself by it).
    var outboundSpace: Int { get }
}

extension RelayConnection {
    /// A connection that does not say: room for anything.
    public var outboundSpace: Int { Int.max }
}

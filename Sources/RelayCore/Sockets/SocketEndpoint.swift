// What the transport hands an authenticated socket's inbound traffic to.

/// What the transport does with an authenticated socket's inbound traffic.
public protocol SocketEndpoint: Sendable {
    /// One inbound text frame that passed the size and per-socket rate checks.
    func receive(text: [UInt8])
    /// An inbound Ping or Pong: counts as session activity.
    func receivedControlFrame()
    /// The socket is gone; called exactly once.
    func closed()
}

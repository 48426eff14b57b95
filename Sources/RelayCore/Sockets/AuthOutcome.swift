// How a socket's `relay.auth` handshake ended.

import RelayProtocol

/// The result of the `relay.auth` handshake (PROTOCOL §4.2).
public enum AuthOutcome: Sendable {
    /// `auth_ok` is already queued as the socket's first frame.
    case authenticated(any SocketEndpoint)
    case rejected(AuthFailureReason)
}

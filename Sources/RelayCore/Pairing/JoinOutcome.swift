// How a phone's wait for the desktop's approval ended.

/// How a `/pair/join` wait ended.
import RelayProtocol

enum JoinOutcome: Sendable {
    /// Approved, with the grant the decision carried (nil: the contract's full access).
    case approved(DeviceGrant?)
    case denied
    case timedOut
    /// The desktop went away, or the session was closed, replaced, stopped or reloaded.
    case desktopGone
}

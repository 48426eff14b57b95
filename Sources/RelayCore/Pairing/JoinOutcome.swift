// How a phone's wait for the desktop's approval ended.

/// How a `/pair/join` wait ended.
enum JoinOutcome: Sendable {
    case approved
    case denied
    case timedOut
    /// The desktop went away, or the session was closed, replaced, stopped or reloaded.
    case desktopGone
}

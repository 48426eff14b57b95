// What a cross-node envelope is for, and which subject it travels on.

/// What a cross-node envelope is for: its `target` wire field (PROTOCOL §6.4).
public enum BusTarget: String, Sendable, CaseIterable {
    /// Session traffic for the session's desktop socket.
    case desktop
    /// Session traffic for the session's phone sockets; with a `targetDeviceID`, one device's revocation.
    case mobile
    /// A desktop's `relay.pair_decision`, for the node whose phone waits on `/pair/join`.
    case pairDecision = "pair_decision"
    /// Asks every node to reload the session from the store.
    case sessionRefresh = "session_refresh"
    /// Asks the node holding the session's desktop socket, if any, to answer.
    case desktopStatusProbe = "desktop_status_probe"
    /// The answer to a probe: the session's desktop is connected to the sender.
    case desktopStatusResponse = "desktop_status_response"

    /// Session traffic goes on the session subject; the rest on the control subject.
    public var isSessionTraffic: Bool { self == .desktop || self == .mobile }
}

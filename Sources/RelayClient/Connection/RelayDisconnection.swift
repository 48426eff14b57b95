// Why a connection ended, and whether the client will make another.

import RelayProtocol

/// A connection that ended: what the relay said, what the transport saw, and what happens next.
public struct RelayDisconnection: Sendable, Equatable, CustomStringConvertible {
    /// The reason of the relay's `disconnect` frame, if it sent one.
    public var reason: String?
    /// The WebSocket close code, if a close frame arrived (1012: the node is shutting down).
    public var closeCode: UInt16?
    /// What failed, when the connection did not end by the relay's choice (refused, reset,
    /// silent too long, a TLS failure).
    public var error: String?
    /// When the client connects again, or `nil` when it will not (see ``RelayConnectionEnd``).
    public var reconnectDelay: Duration?

    /// The reason as a known value.
    public var knownReason: DisconnectReason? { reason.flatMap(DisconnectReason.init(rawValue:)) }

    /// Whether no further connection follows.
    public var isFinal: Bool { reconnectDelay == nil }

    public var description: String {
        var parts: [String] = []
        if let reason { parts.append("reason \(reason)") }
        if let closeCode { parts.append("close \(closeCode)") }
        if let error { parts.append(error) }
        parts.append(reconnectDelay.map { "reconnecting in \($0)" } ?? "not reconnecting")
        return "disconnected (" + parts.joined(separator: ", ") + ")"
    }

    /// Whether a connection that ended this way must not be replaced: the session or this
    /// device is gone (revoked, stopped, expired, replaced, idle), or another connection of the
    /// same device or desktop took over, which a reconnect would only take back.
    var endsSession: Bool {
        switch knownReason {
        case .deviceRevoked, .stoppedByDesktop, .sessionExpired, .replacedByNewPairStart, .idleTimeout,
            .retentionExpired, .removedFromPersistence, .deviceReconnected, .desktopReconnected, .deviceExpired:
            true
        case .relayOverCapacity, .slowConsumer, .heartbeatTimeout, .socketRateLimited, .messageTooLarge, .serverShutdown,
            nil:
            false
        }
    }

    /// Whether the node is going away and the next connection should be tried at once.
    var nodeIsDraining: Bool { knownReason == .serverShutdown || (reason == nil && closeCode == 1012) }
}

/// Why ``RelayPhoneClient/run()`` or ``RelayDesktopClient/run()`` returned.
public enum RelayConnectionEnd: Sendable, Equatable, CustomStringConvertible {
    /// The app called `close()`, or cancelled the task running `run()`.
    case closed
    /// The relay ended the session for this client, with this `disconnect` reason:
    /// `device_revoked`, `stopped_by_desktop`, `session_expired` (also a refused token),
    /// `replaced_by_new_pair_start`, `idle_timeout`, or `device_reconnected`/`desktop_reconnected`
    /// (another connection with the same credentials took over). Reconnecting would not help.
    case ended(reason: String)
    /// ``RelayReconnectPolicy/maximumAttempts`` failures in a row; the last one's description.
    case gaveUp(attempts: Int, lastError: String)

    /// The reason of ``ended(reason:)`` as a known value.
    public var disconnectReason: DisconnectReason? {
        if case .ended(let reason) = self { DisconnectReason(rawValue: reason) } else { nil }
    }

    public var description: String {
        switch self {
        case .closed: "closed"
        case .ended(let reason): "ended by the relay: \(reason)"
        case .gaveUp(let attempts, let lastError): "gave up after \(attempts) attempts: \(lastError)"
        }
    }
}

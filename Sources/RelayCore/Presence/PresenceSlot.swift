// What a node can claim of a session: its desktop, one device, or its pending join.

/// What a node claims of a session while it holds it: the desktop socket, one device's socket, or
/// the pending `/pair/join`. Each slot has one holder at a time, cluster-wide.
public enum PresenceSlot: Sendable, Hashable {
    /// The session's desktop socket.
    case desktop
    /// A socket of the trusted device with this id.
    case device(String)
    /// The `/pair/join` waiting for the desktop's decision.
    case pendingJoin

    /// The slot's name in the store (a hash field in Redis).
    public var field: String {
        switch self {
        case .desktop: "desktop"
        case .device(let id): "device:" + id
        case .pendingJoin: "join"
        }
    }

    /// The slot a store field names; nil for a field this version does not know.
    public init?(field: String) {
        switch field {
        case "desktop": self = .desktop
        case "join": self = .pendingJoin
        default:
            guard field.hasPrefix("device:") else { return nil }
            self = .device(String(field.dropFirst("device:".count)))
        }
    }
}

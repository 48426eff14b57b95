// Who holds a presence slot: a node, and the socket or request on it.

/// Who holds a ``PresenceSlot``: a node (its ``ClusterBus/instanceID``, whose lease keeps the
/// claim alive) and the socket or request on that node. A release names the holder, so a socket
/// that closes after its successor claimed the slot leaves the successor's claim alone.
public struct PresenceHolder: Sendable, Hashable {
    /// The node whose lease the claim lives by.
    public var nodeID: String
    /// The socket's connection id, or the pending join's request id.
    public var holderID: String

    /// A holder on `nodeID`.
    public init(nodeID: String, holderID: String) {
        self.nodeID = nodeID
        self.holderID = holderID
    }

    /// How the store writes it: `<node> <holder>` (node ids hold no space).
    public var encoded: String { nodeID + " " + holderID }

    /// A holder as the store wrote it; nil if malformed.
    public init?(encoded: String) {
        guard let space = encoded.firstIndex(of: " ") else { return nil }
        nodeID = String(encoded[..<space])
        holderID = String(encoded[encoded.index(after: space)...])
        guard !nodeID.isEmpty else { return nil }
    }
}

// This node's claims on the cluster's presence: who is connected to a session, anywhere.

import Logging
import RelayProtocol
import Synchronization

/// Claims, releases and reads of the cluster's presence (the store's ``SessionPresence``), made
/// under this node's id. On a node that runs alone every answer is local and this part answers
/// nil: the callers then count what the node holds itself.
///
/// A store failure is logged and answered nil, so a socket or request still works from the local
/// copy during an outage (DECISIONS 6); the lease (``PresenceLease``) re-asserts every claim once
/// the store answers again.
final class ClusterPresence: NodePart, Sendable {
    let context: NodeContext
    /// Nodes seen holding a lease: a node's desktops can lapse only if it ever held one. A
    /// reference relay in a mixed cluster holds none, and its desktops are not to be declared gone.
    private let leaseHolders = Mutex<Set<String>>([])

    init(context: NodeContext) {
        self.context = context
    }

    /// Remembers nodes seen alive (their claims were live, or their lease answered).
    func noteLeaseHolders<Nodes: Sequence<String>>(_ nodes: Nodes) {
        leaseHolders.withLock { $0.formUnion(nodes) }
    }

    /// Of `nodes`, those ever seen holding a lease; the rest are forgotten from the record when
    /// `keepingOnly` (nodes nobody watches any more need not be remembered).
    func everHeldLease(_ nodes: Set<String>, keepingOnly watched: Set<String>) -> Set<String> {
        leaseHolders.withLock { holders in
            holders.formIntersection(watched)
            return nodes.intersection(holders)
        }
    }

    private func seen(_ presence: SessionPresence) -> SessionPresence {
        if !presence.holders.isEmpty { noteLeaseHolders(presence.holders.values.map(\.nodeID)) }
        return presence
    }

    /// Whether presence is cluster state here (a shared store); false on a node that runs alone.
    var isClustered: Bool { context.store.isShared }

    /// A holder on this node.
    func holder(_ holderID: String) -> PresenceHolder { PresenceHolder(nodeID: context.nodeID, holderID: holderID) }

    /// Claims `slot` of the session for `holderID` on this node; the live presence after it.
    func claim(_ slot: PresenceSlot, of sessionID: String, holderID: String) async -> SessionPresence? {
        await answer("presence_claim_failed", sessionID) { [self] in
            try await context.store.claim(slot, sessionID: sessionID, holder: holder(holderID))
        }
    }

    /// Releases `slot` if `holderID` on this node still holds it; the live presence after it.
    @discardableResult
    func release(_ slot: PresenceSlot, of sessionID: String, holderID: String) async -> SessionPresence? {
        await answer("presence_release_failed", sessionID) { [self] in
            try await context.store.release(slot, sessionID: sessionID, holder: holder(holderID))
        }
    }

    /// What the store answered, or nil (counted and logged as `failure`) when it could not, or
    /// when the node runs alone.
    private func answer(
        _ failure: String, _ sessionID: String, _ ask: () async throws -> SessionPresence
    ) async -> SessionPresence? {
        guard isClustered else { return nil }
        do {
            return seen(try await ask())
        } catch {
            stats.presenceFailure()
            logger.warning("\(failure)", metadata: ["session": "\(Identifiers.redacted(sessionID))", "error": "\(error)"])
            return nil
        }
    }

    /// The session's live presence; nil alone or when the store cannot answer (logged).
    func read(_ sessionID: String) async -> SessionPresence? {
        guard isClustered else { return nil }
        do {
            return try await readOrThrow(sessionID)
        } catch {
            logger.warning("presence_read_failed", metadata: ["session": "\(Identifiers.redacted(sessionID))", "error": "\(error)"])
            return nil
        }
    }

    /// The session's live presence (empty when alone); throws what the store threw.
    func readOrThrow(_ sessionID: String) async throws -> SessionPresence {
        guard isClustered else { return SessionPresence() }
        do {
            return seen(try await context.store.presence(sessionID: sessionID))
        } catch {
            stats.presenceFailure()
            throw error
        }
    }
}

// This node's lease on its presence claims, and what it does when another node's lease lapses.

import Logging
import RelayProtocol
import Synchronization

/// The lease that keeps this node's presence claims alive, and the watch on the nodes holding the
/// desktops of sessions whose phones are here.
///
/// Every check interval (a quarter of `PRESENCE_TTL_MS`, at most 500 ms) the node extends its
/// lease to `PRESENCE_TTL_MS` from now, then asks the store which of the watched nodes still hold
/// theirs. A node that was killed stops renewing: its lease, and with it every claim it made,
/// lapses within `PRESENCE_TTL_MS` of its last renewal, and within one more interval every other
/// node tells its phones of that node's desktops `relay.desktop_status` false; their commands then
/// get `desktop_offline`. The desktop's reconnect anywhere announces it again.
///
/// A node never seen holding a lease (a reference relay in a mixed cluster has none) is not
/// watched: its desktops come and go by its own `relay.desktop_status` messages, as before.
///
/// A node that finds its own lease lapsed (the store was out of reach for longer than the TTL, so
/// other nodes may have dropped its claims and told phones its desktops are gone) claims
/// everything it holds again and announces its desktops, the signal on which clients resync.
final class PresenceLease: NodePart, Sendable {
    let context: NodeContext
    let directory: SessionDirectory
    let router: Router
    let presence: ClusterPresence
    /// Whether this node has held a lease since it started: the first renewal creates it.
    private let held = Atomic(false)
    /// Whether the last renewal failed: an outage is logged when it starts and when it ends.
    private let failing = Atomic(false)

    init(context: NodeContext, directory: SessionDirectory, router: Router, presence: ClusterPresence) {
        self.context = context
        self.directory = directory
        self.router = router
        self.presence = presence
    }

    /// How often the lease is renewed and the watched nodes checked.
    var checkIntervalMillis: Int64 { Self.checkInterval(ttlMillis: configuration.presenceTTLMillis) }

    /// A quarter of the TTL, at most 500 ms (a lapse is seen within TTL + 500 ms), at least 10 ms.
    static func checkInterval(ttlMillis: Int64) -> Int64 { min(max(ttlMillis / 4, 10), 500) }

    /// Renews and checks until the task is cancelled; returns at once on a node that runs alone.
    func run() async {
        guard presence.isClustered else { return }
        while true {
            await renewAndCheck()
            do {
                try await context.clock.sleep(millis: checkIntervalMillis)
            } catch {
                return
            }
        }
    }

    /// One renewal and one check of the watched nodes.
    func renewAndCheck() async {
        await renew()
        await checkWatchedNodes()
    }

    /// Extends the lease; re-asserts every claim if it had lapsed.
    func renew() async {
        guard presence.isClustered else { return }
        let existed: Bool
        do {
            existed = try await context.store.renewLease(nodeID: context.nodeID, ttlMillis: configuration.presenceTTLMillis)
        } catch {
            stats.presenceFailure()
            if !failing.exchange(true, ordering: .relaxed) {
                logger.warning("presence_lease_renewal_failed; retrying every check interval", metadata: ["error": "\(error)"])
            }
            return
        }
        if failing.exchange(false, ordering: .relaxed) { logger.notice("presence_lease_renewed after failures") }
        let wasHeld = held.exchange(true, ordering: .acquiringAndReleasing)
        guard wasHeld, !existed else { return }
        stats.leaseLapse()
        logger.warning("presence_lease_lapsed; claiming held sockets again", metadata: ["node": "\(context.nodeID)"])
        await reassertClaims()
    }

    /// Claims again every socket and pending join this node holds, and announces its desktops to
    /// the phones on other nodes (which may have been told they were offline).
    func reassertClaims() async {
        for session in directory.allSessions {
            let claims = session.state.withLock { s in s.closed ? [] : s.localClaims }
            for claim in claims { _ = await presence.claim(claim.slot, of: session.id, holderID: claim.holderID) }
            if claims.contains(where: { $0.slot == .desktop }) {
                router.publish(.mobile, sessionID: session.id, payload: ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: true))
            }
        }
    }

    /// Asks which nodes holding a desktop of a session with phones here still hold their lease;
    /// the phones of a node that does not are told their desktop is offline.
    func checkWatchedNodes() async {
        let own = context.nodeID
        var watched = Set<String>()
        for session in directory.allSessions {
            session.state.withLock { s in
                guard !s.closed else { return }
                if s.desktop == nil, let node = s.remoteDesktopNode, node != own { watched.insert(node) }
                if s.desktop != nil { watched.formUnion(s.remotePhoneNodes) }
            }
        }
        watched.remove(own)
        guard !watched.isEmpty else { return }
        let live: Set<String>
        do {
            live = try await context.store.liveNodes(watched)
        } catch {
            stats.presenceFailure()
            logger.warning("presence_check_failed", metadata: ["error": "\(error)"])
            return
        }
        presence.noteLeaseHolders(live)
        // Only a node that held a lease can lose it: a reference relay in the cluster never does.
        let lapsed = presence.everHeldLease(watched.subtracting(live), keepingOnly: watched)
        guard !lapsed.isEmpty else { return }
        var sessions = 0
        for session in directory.allSessions {
            let mobiles: [any RelayConnection]? = session.state.withLock { s in
                guard !s.closed, s.desktop == nil, let node = s.remoteDesktopNode, lapsed.contains(node) else { return nil }
                s.remoteDesktopNode = nil
                return s.mobileConnections
            }
            guard let mobiles else { continue }
            sessions += 1
            let status = ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: false)
            for mobile in mobiles { router.deliver(status, to: mobile) }
        }
        stats.remoteDesktopLapse(sessions: sessions)
        logger.warning(
            "presence_lapsed; desktops there marked offline, phones there no longer counted",
            metadata: ["nodes": "\(lapsed.sorted().joined(separator: ","))", "sessions": "\(sessions)"])
        await recountPhones(lostOn: lapsed)
    }

    /// Desktops here whose phones were on a lapsed node hear how many devices are left.
    private func recountPhones(lostOn lapsed: Set<String>) async {
        for session in directory.allSessions {
            let affected = session.state.withLock { s -> Bool in
                guard !s.closed, s.desktop != nil, !s.remotePhoneNodes.isDisjoint(with: lapsed) else { return false }
                s.remotePhoneNodes.subtract(lapsed)
                return true
            }
            guard affected, let live = await presence.read(session.id) else { continue }
            router.announceDeviceCount(session, count: live.connectedDeviceCount, publishing: false)
        }
    }
}

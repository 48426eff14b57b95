// What every part of a node shares: its settings, counters, log, clock, store and bus.

import Logging
import RelayProtocol

/// The node-wide facts each part of ``Relay`` is built with. Everything here is immutable or
/// thread-safe on its own; no part holds a lock of another.
struct NodeContext: Sendable {
    let configuration: CoreConfiguration
    let stats: RelayStats
    let logger: Logger
    let clock: any RelayClock
    let store: any StateStore
    /// nil: this node runs alone.
    let bus: (any ClusterBus)?
    /// Where work started from synchronous code (a bus callback, a closing socket) runs, so it
    /// ends with the node instead of outliving it.
    let work: BackgroundWork
    /// The default `wsURL` and the allowed origins (they may follow the bound port).
    let address: PublicAddress
    /// This node's id: the bus's instance id, which presence claims and their lease are made
    /// under, so a `relay.desktop_status` from a node names the node holding the desktop.
    let nodeID: String
    /// nil: this node traces nothing.
    let tracer: NodeTracer?

    var now: Int64 { clock.nowMillis() }

    /// `token` as a record keeps it: its digest, and the token too if the store writes tokens.
    func storedToken(_ token: String) -> StoredToken { StoredToken(token, keepingClear: store.keepsTokensInClear) }
}

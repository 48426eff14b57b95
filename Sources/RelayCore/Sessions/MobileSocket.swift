// A phone socket this node holds for a session.

/// A local mobile socket of a session.
struct MobileSocket {
    let connection: any RelayConnection
    let deviceID: String
    /// Last accepted command `seq` on this connection (PROTOCOL §4.7 step 13).
    var lastSeq: UInt64 = 0
    /// Extension 11: the `seq` of the first desktop envelope delivered live since `auth_ok`; a
    /// resume replays only what came before it.
    var firstLiveSeq: UInt64?
    /// Still waiting for that first envelope (counted in ``SessionState/awaitingFirstLive``).
    var awaitingFirstLive = true
    /// While a resume replays: the live frames held back, delivered after `relay.resumed`.
    var held: [(seq: UInt64?, frame: [UInt8])]?
}

// A phone socket this node holds for a session.

/// A local mobile socket of a session.
struct MobileSocket {
    let connection: any RelayConnection
    let deviceID: String
    /// Last accepted command `seq` on this connection (PROTOCOL §4.7 step 13).
    var lastSeq: UInt64 = 0
}

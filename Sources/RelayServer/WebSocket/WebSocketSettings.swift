// What every WebSocket of a node shares: the core, the limits, the timers, the logger.

import Logging
import RelayCore

/// Settings every socket of this node shares.
struct WebSocketSettings: Sendable {
    let relay: Relay
    let maxMessageBytes: Int
    let maxMessagesPerMinute: Int
    let authTimeoutMillis: Int64
    let heartbeatIntervalMillis: Int64
    let heartbeatTimeoutMillis: Int64
    let outboundCapacity: Int
    let writeStallTimeoutMillis: Int64
    let logger: Logger
}

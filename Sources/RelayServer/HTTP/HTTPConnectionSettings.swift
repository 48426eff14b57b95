// What every HTTP connection of a node shares: limits, routes, the gate, the decoder's setup.

import Logging
import NIOCore
import NIOHTTP1

/// What every HTTP connection of a node shares.
struct HTTPConnectionSettings: Sendable {
    let limits: HTTPLimits
    /// `MAX_JSON_BYTES`: a body over it is not read.
    let maxBodyBytes: Int
    let routes: HTTPRoutes
    let webSocket: WebSocketSettings
    let trustedProxyHops: Int
    let allowLegacyQueryToken: Bool
    let gate: HTTPConnectionGate
    let logger: Logger

    /// The decoder's own limits (it counts the request target too), a backstop above ours: the
    /// meter in front of it checks ours after every read, so the decoder must not trip first on
    /// a head that arrives in one large read.
    var decoderLimits: NIOHTTPDecoderLimitConfiguration {
        var configuration = NIOHTTPDecoderLimitConfiguration()
        configuration.maxHeaderFieldSize = limits.maxHeaderBytes + 262_144
        configuration.maxHeaderListSize = limits.maxHeaderBytes + 262_144
        return configuration
    }

    func makeDecoder() -> ByteToMessageHandler<HTTPRequestDecoder> {
        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: decoderLimits))
    }
}

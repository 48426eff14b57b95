// Settings shared by the phone and the desktop client.

import NIOCore

/// How a ``RelayPhoneClient`` or ``RelayDesktopClient`` connects.
public struct RelayClientConfiguration: Sendable {
    /// How an `https://`/`wss://` relay's certificate is checked.
    public var tls: RelayTLS
    /// When a dropped connection is tried again.
    public var reconnect: RelayReconnectPolicy
    /// Deadline for a TCP (and TLS) connection plus the WebSocket upgrade.
    public var connectTimeout: Duration
    /// Deadline for the relay's `auth_ok` after `relay.auth`.
    public var authTimeout: Duration
    /// Deadline for an HTTP call (the phone's join long-polls longer: see
    /// ``RelayPhoneClient/join(_:deviceName:timeout:)``).
    public var requestTimeout: Duration
    /// A connection that has received nothing this long is presumed dead and replaced. The relay
    /// pings every 20 s by default (`WS_HEARTBEAT_INTERVAL_MS`), so a live connection is never
    /// silent that long; keep this above the relay's heartbeat interval.
    public var silenceTimeout: Duration
    /// The event loops the connections run on: Network.framework's (`NIOTSEventLoopGroup`) by
    /// default where it exists, NIOPosix's elsewhere. A `MultiThreadedEventLoopGroup` on an Apple
    /// platform uses NIOPosix sockets and NIOSSL instead.
    public var eventLoopGroup: any EventLoopGroup

    /// The defaults: system trust, the default reconnect policy, 10 s to connect and to
    /// authenticate, 30 s per HTTP call, 75 s of silence.
    public init(
        tls: RelayTLS = .system,
        reconnect: RelayReconnectPolicy = RelayReconnectPolicy(),
        connectTimeout: Duration = .seconds(10),
        authTimeout: Duration = .seconds(10),
        requestTimeout: Duration = .seconds(30),
        silenceTimeout: Duration = .seconds(75),
        eventLoopGroup: (any EventLoopGroup)? = nil
    ) {
        self.tls = tls
        self.reconnect = reconnect
        self.connectTimeout = connectTimeout
        self.authTimeout = authTimeout
        self.requestTimeout = requestTimeout
        self.silenceTimeout = silenceTimeout
        self.eventLoopGroup = eventLoopGroup ?? ChannelConnector.defaultGroup
    }
}

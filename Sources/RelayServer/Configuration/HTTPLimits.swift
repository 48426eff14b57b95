// The limits of an HTTP connection before it becomes a WebSocket: timeouts, head size, count.

/// Time and size limits of an HTTP connection until it becomes a WebSocket (or closes). Each is a
/// variable of `relay --help`; the defaults serve a phone on a slow network and stay above what
/// common proxies and load balancers use, so the proxy, not the relay, closes an idle keep-alive.
public struct HTTPLimits: Sendable, Equatable {
    /// `HTTP_IDLE_TIMEOUT_MS`: no request in flight (a new connection included) for this long closes
    /// the connection without a response. Above the 60 s idle timeout of common proxies, so a proxy
    /// never reuses a connection the relay is closing.
    public var idleTimeoutMillis: Int64 = 65_000
    /// `HTTP_HEADER_TIMEOUT_MS`: the whole request head, from its first byte (408, then close).
    public var headerTimeoutMillis: Int64 = 20_000
    /// `HTTP_BODY_TIMEOUT_MS`: the whole body once the head is in (408, then close). A response the
    /// relay is still preparing (a `/pair/join` long-poll) is not cut by it.
    public var bodyTimeoutMillis: Int64 = 30_000
    /// `MAX_HTTP_HEADER_BYTES`: request line plus header lines. Over it: 431 (414 while still in the
    /// request line), then close.
    public var maxHeaderBytes = 16_384
    /// `MAX_HTTP_CONNECTIONS`: connections open and not yet admitted on this node (HTTP, and
    /// upgraded sockets until they authenticate); over it a new connection is closed at once.
    public var maxConnections = 4_096

    /// The smallest header limit accepted: a browser's ordinary request head fits.
    public static let minimumHeaderBytes = 1_024

    /// The defaults.
    public init() {}
}

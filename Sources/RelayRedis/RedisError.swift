// Why a Redis command has no reply, or a reply the caller could not use.

/// Why a command has no reply, or a reply the caller could not use.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: Sendable, Equatable {
        /// There is no connection (Redis is down or being reconnected to): refused at once.
        case unavailable
        /// The connection broke while the command was in flight; it may or may not have run.
        case connectionLost
        /// Redis did not answer within the command timeout; the connection is reset.
        case timeout
        /// The connection was shut down.
        case shutdown
        /// Redis answered with an error reply.
        case server
        /// Redis answered with something the caller did not expect.
        case unexpectedReply
        /// A write was applied on the master but fewer replicas than required confirmed it within
        /// the `WAIT` timeout: it is not acknowledged, and may be lost in a failover.
        case notReplicated
    }

    /// The kind of failure.
    public let kind: Kind
    /// A human-readable description (no secrets).
    public let message: String

    /// An error of `kind` with `message`.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// `redis <kind>: <message>`.
    public var description: String { "redis \(kind): \(message)" }
}

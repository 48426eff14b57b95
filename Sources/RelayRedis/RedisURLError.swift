// Why a REDIS_URL was refused, in words that never contain the password.

/// Why a `REDIS_URL` was refused. The message names the problem without naming the variable (the
/// caller does, e.g. `REDIS_URL: invalid port '0': expected 1-65535`) and never contains the
/// password.
public struct RedisURLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem.
    public enum Kind: Sendable, Equatable {
        /// Not of the form `scheme://…`, or an unparsable host or escape.
        case notAURL
        /// A scheme other than `redis`, `unix` or `redis+unix`.
        case unsupportedScheme
        /// `rediss://`: this build has no TLS (the message says what to do instead).
        case tlsUnsupported
        /// A port that is not a number in 1…65535.
        case badPort
        /// A database that is not a non-negative number.
        case badDatabase
        /// A query parameter or fragment this parser does not take.
        case unsupportedComponent
        /// A `REDIS_SENTINELS` list or `REDIS_SENTINEL_MASTER` name that cannot be used.
        case badSentinels
    }

    /// The kind of problem.
    public let kind: Kind
    /// A message for the operator.
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

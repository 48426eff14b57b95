// Why a NATS setting cannot be used, in words that never repeat a secret.

/// Why a NATS setting cannot be used. The message names the problem and never repeats a secret.
public struct NATSConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, e.g. `NATS_URL: port "0" of server 1 is not in 1...65535`.
    public let message: String

    /// An error with `message`.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}

// Why the NATS bus could not start or do what it was asked.

/// Why the bus could not start or do what it was asked.
public struct NATSBusError: Error, Sendable, CustomStringConvertible {
    /// What failed, with libnats's status text when it came from libnats.
    public let message: String

    /// An error with `message`.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}

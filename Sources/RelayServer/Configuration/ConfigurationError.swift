// The error that stops the start: a configuration value the relay cannot run with.

/// A configuration value that stops the start, with a message that names the variable.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The message, naming the variable and what is wrong with it.
    public let description: String
    /// An error with `description` as its message.
    public init(_ description: String) { self.description = description }
}

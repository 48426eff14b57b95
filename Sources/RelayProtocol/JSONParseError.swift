// Why a byte sequence is not one JSON value, and where the first problem is.

/// Why a byte sequence is not one JSON value, with the position of the first problem.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Human-readable reason and position, e.g. `expected value at line 1 column 5`.
    public let description: String
    /// Byte offset of the problem in the input.
    public let offset: Int

    init(description: String, offset: Int) {
        self.description = description
        self.offset = offset
    }
}

// The error of a request body whose JSON has the wrong shape (HTTP 422).

/// The JSON shape is wrong: unknown field, missing required field or wrong type (HTTP 422).
public struct BodyShapeError: Error, Sendable, CustomStringConvertible {
    /// A short human detail, e.g. `unknown field `foo``.
    public let description: String
    /// Creates a shape error with its detail.
    public init(_ description: String) { self.description = description }
}

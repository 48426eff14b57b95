// A phone's rejected frame: the relay.error code and the contract's exact message (PROTOCOL §4.7).

/// A rejected mobile frame: the code and the exact human message of the wire contract.
public struct MobileError: Error, Sendable, Equatable {
    /// The `error` field of the `relay.error` frame.
    public let code: MobileErrorCode
    /// The `message` field, byte-for-byte as the contract states it.
    public let message: String

    /// Creates a rejection with its wire code and message.
    public init(_ code: MobileErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

// A token as a session record holds it: always its digest, the token itself only in plain mode.

/// A token as a ``SessionRecord`` holds it: its ``TokenDigest`` always, and the token itself only
/// on a node that writes the reference layout (`REDIS_TOKEN_STORAGE=plain`, for a cluster mixed
/// with reference relays) and only while it knows it. Two stored tokens are equal when their
/// digests are: a record read back as digests equals the one written from tokens.
public struct StoredToken: Sendable, Hashable, CustomStringConvertible {
    /// What authentications compare and the store's token index is keyed by.
    public let digest: TokenDigest
    /// The token itself, kept only for a store that writes tokens in clear; nil otherwise.
    public let clear: String?

    /// `token`, keeping its clear text only if `keepingClear`.
    public init(_ token: String, keepingClear: Bool) {
        digest = TokenDigest(of: token)
        clear = keepingClear ? token : nil
    }

    /// A token known only by its digest (read from a record that stores digests).
    public init(digest: TokenDigest) {
        self.digest = digest
        clear = nil
    }

    /// Whether `token` is this one, compared in constant time.
    public func matches(_ token: String) -> Bool { digest.matches(token) }

    /// Whether `other` is this one, compared in constant time.
    public func matches(_ other: TokenDigest) -> Bool { digest.matches(other) }

    public static func == (a: StoredToken, b: StoredToken) -> Bool { a.digest == b.digest }
    public func hash(into hasher: inout Hasher) { hasher.combine(digest) }

    /// Never the token: records are logged and dumped in tests.
    public var description: String { digest.description }
}

// What the cluster keeps of a token: its SHA-256, compared in constant time.

import RelayProtocol

/// The SHA-256 of a token: what the store keeps instead of the token (unless
/// `REDIS_TOKEN_STORAGE=plain`), what the token indexes are keyed by, and what an authentication
/// compares. Tokens are random and at least 128 bits strong, so an unkeyed digest cannot be
/// reversed or guessed: reading the store no longer lets anyone be a desktop or a phone.
public struct TokenDigest: Sendable, Hashable, CustomStringConvertible {
    /// The 32 digest bytes, as four big-endian words (cheap to hash and to compare).
    private let words: (UInt64, UInt64, UInt64, UInt64)

    /// The digest of `token`'s UTF-8 bytes.
    public init(of token: String) {
        self.init(bytes: SHA256.hash(token.utf8))!
    }

    /// A digest from its 32 bytes; nil for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        func word(_ at: Int) -> UInt64 { bytes[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        words = (word(0), word(8), word(16), word(24))
    }

    /// A digest from its 64 lower- or upper-case hex digits; nil for anything else.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for i in stride(from: 0, to: 64, by: 2) {
            guard let high = Self.nibble(digits[i]), let low = Self.nibble(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.init(bytes: bytes)
    }

    /// The 32 digest bytes.
    public var bytes: [UInt8] {
        [words.0, words.1, words.2, words.3].flatMap { word in (0..<8).reversed().map { UInt8(truncatingIfNeeded: word >> (UInt64($0) * 8)) } }
    }

    /// Lower-case hex, 64 digits: how the store writes it.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `token` has this digest, compared without an early exit.
    public func matches(_ token: String) -> Bool { matches(TokenDigest(of: token)) }

    /// Whether the two digests are equal, compared without an early exit (an authentication's
    /// comparison; `==` is for the indexes, whose hits are re-checked with this).
    public func matches(_ other: TokenDigest) -> Bool {
        ((words.0 ^ other.words.0) | (words.1 ^ other.words.1) | (words.2 ^ other.words.2) | (words.3 ^ other.words.3)) == 0
    }

    public static func == (a: TokenDigest, b: TokenDigest) -> Bool { a.matches(b) }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    /// The first 8 hex digits only: a digest is not a secret, but a log needs no more.
    public var description: String { "sha256:\(hex.prefix(8))…" }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

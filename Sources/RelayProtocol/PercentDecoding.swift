// Percent-decoding (`%XX`) of URL components: the one decoder of every URL part the relay reads.

/// `%XX` decoding of URL components: user names, passwords, tokens and paths in `REDIS_URL` and
/// `NATS_URL`, and the token of a legacy `/ws?token=` upgrade.
public enum PercentDecoding {
    /// Why a component did not decode; callers word the message without repeating the value,
    /// which may be a secret.
    public enum Failure: Error, Sendable {
        case invalidEscape
        case notUTF8
    }

    /// The decoded text: valid UTF-8, and without NUL unless `allowsNUL` (the C clients take C
    /// strings). A `%` not followed by two hex digits is ``Failure/invalidEscape``.
    ///
    /// - Parameters:
    ///   - plusIsSpace: `+` means a space, as in an `application/x-www-form-urlencoded` query
    ///     value; otherwise `+` is itself (RFC 3986). An escaped `%2B` is `+` either way.
    ///   - allowsNUL: a decoded NUL byte is kept instead of failing with ``Failure/notUTF8``, for a
    ///     value that never reaches a C string.
    public static func decode(
        _ text: some StringProtocol, plusIsSpace: Bool = false, allowsNUL: Bool = false
    ) throws(Failure) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw .invalidEscape
            }
            bytes.append(high << 4 | low)
        }
        guard allowsNUL || !bytes.contains(0), UTF8Validation.isValid(bytes) else { throw .notUTF8 }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

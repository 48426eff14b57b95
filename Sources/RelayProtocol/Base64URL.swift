// base64url without padding (RFC 4648 §5), the encoding of tokens, signatures and extension 12's
// binary values.

/// base64url without padding, decoded strictly.
public enum Base64URL {
    /// The encoding of `bytes`, without padding.
    public static func encode(_ bytes: some Collection<UInt8>) -> String { Identifiers.base64URL(bytes) }

    /// The bytes of `text`, or nil unless it is canonical base64url without padding: no `=`, no
    /// other characters, no impossible length, and the unused low bits of the last character zero
    /// (as Rust's `URL_SAFE_NO_PAD` decodes).
    public static func decode(_ text: String) -> [UInt8]? {
        guard let count = decodedCount(text) else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(count)
        var accumulator: UInt32 = 0
        var bits = 0
        for character in text.utf8 {
            guard let value = sextet(character) else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        return output
    }

    /// How many bytes `text` decodes to, checked without building them; nil when `decode` would
    /// fail.
    public static func decodedCount(_ text: String) -> Int? {
        let length = text.utf8.count
        guard length % 4 != 1 else { return nil }
        var last: UInt8 = 0
        for character in text.utf8 {
            guard let value = sextet(character) else { return nil }
            last = value
        }
        // The last character's bits past the final whole byte must be zero.
        switch length % 4 {
        case 2: guard last & 0x0F == 0 else { return nil }
        case 3: guard last & 0x03 == 0 else { return nil }
        default: break
        }
        return length / 4 * 3 + max(0, length % 4 - 1)
    }

    @inline(__always)
    private static func sextet(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): character - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): character - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }
}

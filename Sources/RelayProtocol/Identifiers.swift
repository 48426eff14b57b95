/// Random identifiers and the token rules of PROTOCOL §1, shared by the relay and its clients.
public enum Identifiers {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// base64url without padding of `byteCount` random bytes from the system CSPRNG.
    public static func random(bytes byteCount: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        var raw = [UInt8](repeating: 0, count: byteCount)
        var i = 0
        while i < byteCount {
            var word = rng.next()
            for _ in 0..<8 where i < byteCount {
                raw[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        return base64URL(raw)
    }

    /// base64url encoding without padding.
    public static func base64URL(_ bytes: some Collection<UInt8>) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = iterator.next()
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | (b1 ?? 0) >> 4)])
            if let b1 {
                out.append(alphabet[Int((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6)])
                if let b2 { out.append(alphabet[Int(b2 & 0x3F)]) }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A relay-assigned device id: 12 random bytes, 16 characters.
    public static func deviceID() -> String { random(bytes: 12) }
    /// A device session token: 32 random bytes, 43 characters.
    public static func deviceToken() -> String { random(bytes: 32) }
    /// Pairing request ids, connection ids, instance ids and bus nonces: 10 bytes, 14 characters.
    public static func shortID() -> String { random(bytes: 10) }

    /// "Opaque token (min N)": N…512 characters, each in `[A-Za-z0-9_-]`.
    public static func isOpaqueToken(_ value: String, minLength: Int) -> Bool {
        var count = 0
        for byte in value.utf8 {
            count += 1
            if count > 512 { return false }
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                continue
            default:
                return false
            }
        }
        return count >= minLength
    }

    /// Constant-time equality: length first, then XOR-accumulate over every byte.
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// Session ids in logs: `first6...last4`, never the whole id.
    public static func redacted(_ sessionID: String) -> String {
        guard sessionID.count > 10 else { return "***" }
        return "\(sessionID.prefix(6))...\(sessionID.suffix(4))"
    }
}

// HMAC-SHA256 signatures of envelopes (PROTOCOL §6.5), through libcrypto.

import COpenSSL
import RelayProtocol

/// Signs with the current secret; verifies against the current one or, during a rotation, the
/// previous one. Keys are the UTF-8 bytes of the trimmed secrets.
struct EnvelopeSigner: Sendable {
    /// SHA-256 output size.
    static let macLength = 32

    private let key: [UInt8]
    private let previousKey: [UInt8]?

    /// A signer for `secret`, or nil when there is no secret (unsigned mode). Both secrets are
    /// trimmed; an empty previous secret is ignored.
    init?(secret: String?, previousSecret: String? = nil) {
        guard let secret = secret?.trimmingWhitespace(), !secret.isEmpty else { return nil }
        self.key = Array(secret.utf8)
        if let previous = previousSecret?.trimmingWhitespace(), !previous.isEmpty {
            self.previousKey = Array(previous.utf8)
        } else {
            self.previousKey = nil
        }
    }

    /// base64url without padding (43 characters) of the HMAC of `canonical` with the current key.
    func signature(for canonical: [UInt8]) -> String {
        Identifiers.base64URL(Self.mac(key: key, message: canonical))
    }

    /// Whether `signature` is a well-formed base64url-nopad HMAC of `canonical` under the current
    /// or the previous key. Compared in constant time; padded or malformed text never matches.
    func verify(_ signature: String, canonical: [UInt8]) -> Bool {
        guard let given = Base64URL.decode(signature), given.count == Self.macLength else { return false }
        if Self.equal(Self.mac(key: key, message: canonical), given) { return true }
        if let previousKey, Self.equal(Self.mac(key: previousKey, message: canonical), given) { return true }
        return false
    }

    static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 64)  // EVP_MAX_MD_SIZE
        var length: UInt32 = 0
        let result = key.withUnsafeBufferPointer { key in
            message.withUnsafeBufferPointer { message in
                output.withUnsafeMutableBufferPointer { output in
                    HMAC(
                        EVP_sha256(), key.baseAddress, Int32(key.count), message.baseAddress, message.count,
                        output.baseAddress, &length)
                }
            }
        }
        // HMAC fails only when libcrypto cannot allocate; nothing sensible can be signed then.
        precondition(result != nil && Int(length) == macLength, "HMAC-SHA256 failed")
        return Array(output.prefix(macLength))
    }

    private static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { a in b.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 } }
    }
}

// Noise's CipherState (Noise Protocol Framework rev. 34, §5.1) over ChaCha20-Poly1305.

import Crypto
import Foundation

/// A key and a counter nonce; before a key is set, encryption is the identity (§5.1).
struct NoiseCipherState: Sendable {
    private(set) var key: SymmetricKey?
    private(set) var nonce: UInt64 = 0

    init(key: SymmetricKey? = nil) { self.key = key }

    var hasKey: Bool { key != nil }

    mutating func initializeKey(_ key: SymmetricKey?) {
        self.key = key
        nonce = 0
    }

    /// `EncryptWithAd`: the ciphertext with its 16-byte tag, then the nonce advances.
    mutating func encrypt(_ plaintext: [UInt8], associatedData: [UInt8]) throws -> [UInt8] {
        guard let key else { return plaintext }
        guard nonce < UInt64.max else { throw EndToEndError.nonceExhausted }
        defer { nonce += 1 }
        return try ChaChaPolyBox.seal(plaintext, key: key, nonce: ChaChaPolyBox.noiseNonce(nonce), associatedData: associatedData)
    }

    /// `DecryptWithAd`: the plaintext, or a throw (the nonce then does not advance).
    mutating func decrypt(_ ciphertext: [UInt8], associatedData: [UInt8]) throws -> [UInt8] {
        guard let key else { return ciphertext }
        guard nonce < UInt64.max else { throw EndToEndError.nonceExhausted }
        let plaintext = try ChaChaPolyBox.open(ciphertext, key: key, nonce: ChaChaPolyBox.noiseNonce(nonce), associatedData: associatedData)
        nonce += 1
        return plaintext
    }
}

/// ChaCha20-Poly1305 with the two nonce layouts extension 12 uses.
enum ChaChaPolyBox {
    /// Noise's nonce for ChaChaPoly: four zero bytes, then `n` as 64-bit little-endian (§12.3).
    static func noiseNonce(_ n: UInt64) -> [UInt8] {
        [0, 0, 0, 0] + withUnsafeBytes(of: n.littleEndian) { Array($0) }
    }

    /// Extension 12's nonce for sealed envelopes: four zero bytes, then the envelope's `seq` as
    /// 64-bit big-endian.
    static func envelopeNonce(seq: UInt64) -> [UInt8] {
        [0, 0, 0, 0] + withUnsafeBytes(of: seq.bigEndian) { Array($0) }
    }

    static func seal(_ plaintext: [UInt8], key: SymmetricKey, nonce: [UInt8], associatedData: [UInt8]) throws -> [UInt8] {
        let box = try ChaChaPoly.seal(plaintext, using: key, nonce: ChaChaPoly.Nonce(data: nonce), authenticating: associatedData)
        return Array(box.ciphertext) + Array(box.tag)
    }

    static func open(_ ciphertext: [UInt8], key: SymmetricKey, nonce: [UInt8], associatedData: [UInt8]) throws -> [UInt8] {
        guard ciphertext.count >= 16 else { throw EndToEndError.authenticationFailed }
        do {
            let box = try ChaChaPoly.SealedBox(
                nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16))
            return Array(try ChaChaPoly.open(box, using: key, authenticating: associatedData))
        } catch {
            throw EndToEndError.authenticationFailed
        }
    }
}

// Noise's SymmetricState (rev. 34, §5.2) with SHA-256: the chaining key, the handshake hash and
// the cipher they key.

import Crypto
import Foundation

/// The chaining key `ck`, the handshake hash `h` and the CipherState they key (§5.2).
struct NoiseSymmetricState: Sendable {
    private(set) var chainingKey: [UInt8]
    private(set) var handshakeHash: [UInt8]
    private var cipher = NoiseCipherState()

    /// `InitializeSymmetric(protocol_name)`: the name padded to 32 bytes, or its hash when longer.
    init(protocolName: String) {
        let name = Array(protocolName.utf8)
        handshakeHash = name.count <= 32 ? name + [UInt8](repeating: 0, count: 32 - name.count) : Array(Crypto.SHA256.hash(data: name))
        chainingKey = handshakeHash
    }

    var hasKey: Bool { cipher.hasKey }

    mutating func mixHash(_ data: [UInt8]) {
        var hasher = Crypto.SHA256()
        hasher.update(data: handshakeHash)
        hasher.update(data: data)
        handshakeHash = Array(hasher.finalize())
    }

    mutating func mixKey(_ inputKeyMaterial: [UInt8]) {
        let outputs = Self.hkdf(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, count: 2)
        chainingKey = outputs[0]
        cipher.initializeKey(SymmetricKey(data: outputs[1]))
    }

    mutating func mixKeyAndHash(_ inputKeyMaterial: [UInt8]) {
        let outputs = Self.hkdf(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, count: 3)
        chainingKey = outputs[0]
        mixHash(outputs[1])
        cipher.initializeKey(SymmetricKey(data: outputs[2]))
    }

    mutating func encryptAndHash(_ plaintext: [UInt8]) throws -> [UInt8] {
        let ciphertext = try cipher.encrypt(plaintext, associatedData: handshakeHash)
        mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws -> [UInt8] {
        let plaintext = try cipher.decrypt(ciphertext, associatedData: handshakeHash)
        mixHash(ciphertext)
        return plaintext
    }

    /// `Split()`: the initiator's sending key and the responder's sending key.
    func split() -> (initiatorToResponder: SymmetricKey, responderToInitiator: SymmetricKey) {
        let outputs = Self.hkdf(chainingKey: chainingKey, inputKeyMaterial: [], count: 2)
        return (SymmetricKey(data: outputs[0]), SymmetricKey(data: outputs[1]))
    }

    /// Noise's `HKDF(chaining_key, input_key_material, num_outputs)` with HMAC-SHA256 (§4.3).
    static func hkdf(chainingKey: [UInt8], inputKeyMaterial: [UInt8], count: Int) -> [[UInt8]] {
        let tempKey = SymmetricKey(data: Array(HMAC<Crypto.SHA256>.authenticationCode(for: inputKeyMaterial, using: SymmetricKey(data: chainingKey))))
        var outputs: [[UInt8]] = []
        var previous: [UInt8] = []
        for index in 1...count {
            previous = Array(HMAC<Crypto.SHA256>.authenticationCode(for: previous + [UInt8(index)], using: tempKey))
            outputs.append(previous)
        }
        return outputs
    }
}

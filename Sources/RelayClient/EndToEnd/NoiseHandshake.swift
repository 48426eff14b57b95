// Noise's HandshakeState (rev. 34, §5.3) for the two patterns of extension 12:
// Noise_IKpsk2_25519_ChaChaPoly_SHA256 and Noise_KK_25519_ChaChaPoly_SHA256.

import Crypto
import Foundation
import RelayProtocol

/// One side of a two-message Noise handshake. Write and read messages in turn; after the second
/// message ``split()`` gives the transport keys.
struct NoiseHandshake: Sendable {
    private enum Token { case e, s, ee, es, se, ss, psk }

    let pattern: NoisePatternName
    let isInitiator: Bool
    private var symmetric: NoiseSymmetricState
    private let staticKey: Curve25519.KeyAgreement.PrivateKey
    private var ephemeralKey: Curve25519.KeyAgreement.PrivateKey?
    /// The remote static key: known before the handshake (KK, IKpsk2's initiator) or learnt in it.
    private(set) var remoteStatic: [UInt8]?
    private var remoteEphemeral: [UInt8]?
    private let presharedKey: [UInt8]?
    private var messageIndex = 0

    static let dhLength = 32

    /// - Parameters:
    ///   - remoteStatic: The responder's key for an IKpsk2 initiator; the other side's for KK.
    ///   - presharedKey: IKpsk2's 32-byte psk.
    ///   - ephemeral: A fixed ephemeral key (the interoperability tests); a fresh one otherwise.
    init(
        pattern: NoisePatternName, initiator: Bool, prologue: [UInt8], staticKey: Curve25519.KeyAgreement.PrivateKey,
        remoteStatic: [UInt8]?, presharedKey: [UInt8]? = nil, ephemeral: Curve25519.KeyAgreement.PrivateKey? = nil
    ) throws {
        self.pattern = pattern
        self.isInitiator = initiator
        self.staticKey = staticKey
        self.remoteStatic = remoteStatic
        self.presharedKey = presharedKey
        self.ephemeralKey = ephemeral
        symmetric = NoiseSymmetricState(protocolName: Self.protocolName(pattern))
        symmetric.mixHash(prologue)
        let own = Array(staticKey.publicKey.rawRepresentation)
        switch pattern {
        case .ikpsk2:
            guard let psk = presharedKey, psk.count == 32 else { throw EndToEndError.handshakeFailed("IKpsk2 needs a 32-byte psk") }
            guard initiator else {
                symmetric.mixHash(own)  // <- s
                return
            }
            guard let remoteStatic, remoteStatic.count == Self.dhLength else {
                throw EndToEndError.handshakeFailed("IKpsk2's initiator needs the responder's static key")
            }
            symmetric.mixHash(remoteStatic)
        case .kk:
            guard let remoteStatic, remoteStatic.count == Self.dhLength else {
                throw EndToEndError.handshakeFailed("KK needs the other side's static key")
            }
            // -> s, then <- s: the initiator's key first.
            symmetric.mixHash(initiator ? own : remoteStatic)
            symmetric.mixHash(initiator ? remoteStatic : own)
        }
    }

    static func protocolName(_ pattern: NoisePatternName) -> String {
        "Noise_\(pattern.rawValue)_25519_ChaChaPoly_SHA256"
    }

    private var messages: [[Token]] {
        switch pattern {
        case .ikpsk2: [[.e, .es, .s, .ss], [.e, .ee, .se, .psk]]
        case .kk: [[.e, .es, .ss], [.e, .ee, .se]]
        }
    }

    private var usesPSK: Bool { pattern == .ikpsk2 }

    /// Both messages done.
    var isComplete: Bool { messageIndex == 2 }

    /// Whether the next message is this side's to write.
    var isMyTurn: Bool { (messageIndex % 2 == 0) == isInitiator }

    /// `h` once complete: both sides hold the same value.
    var handshakeHash: [UInt8] { symmetric.handshakeHash }

    /// `WriteMessage(payload)`.
    mutating func writeMessage(payload: [UInt8]) throws -> [UInt8] {
        guard !isComplete, isMyTurn else { throw EndToEndError.handshakeFailed("not this side's turn to write") }
        var out: [UInt8] = []
        for token in messages[messageIndex] {
            switch token {
            case .e:
                let key = ephemeralKey ?? Curve25519.KeyAgreement.PrivateKey()
                ephemeralKey = key
                let pub = Array(key.publicKey.rawRepresentation)
                out += pub
                symmetric.mixHash(pub)
                if usesPSK { symmetric.mixKey(pub) }
            case .s:
                out += try symmetric.encryptAndHash(Array(staticKey.publicKey.rawRepresentation))
            case .psk:
                symmetric.mixKeyAndHash(presharedKey ?? [])
            default:
                symmetric.mixKey(try dh(token))
            }
        }
        out += try symmetric.encryptAndHash(payload)
        guard out.count <= EndToEndPayload.maxNoiseMessageBytes else { throw EndToEndError.handshakeFailed("message too long") }
        messageIndex += 1
        return out
    }

    /// `ReadMessage(message)`: the payload, or a throw for a message that is not the other side's.
    /// After a throw the state is spent: callers discard it and start a new handshake.
    mutating func readMessage(_ message: [UInt8]) throws -> [UInt8] {
        guard !isComplete, !isMyTurn else { throw EndToEndError.handshakeFailed("not the other side's turn to write") }
        guard message.count <= EndToEndPayload.maxNoiseMessageBytes else { throw EndToEndError.handshakeFailed("message too long") }
        var rest = message[...]
        func take(_ count: Int) throws -> [UInt8] {
            guard rest.count >= count else { throw EndToEndError.handshakeFailed("message too short") }
            defer { rest = rest.dropFirst(count) }
            return Array(rest.prefix(count))
        }
        for token in messages[messageIndex] {
            switch token {
            case .e:
                let pub = try take(Self.dhLength)
                remoteEphemeral = pub
                symmetric.mixHash(pub)
                if usesPSK { symmetric.mixKey(pub) }
            case .s:
                let sealed = try take(Self.dhLength + (symmetric.hasKey ? 16 : 0))
                remoteStatic = try symmetric.decryptAndHash(sealed)
            case .psk:
                symmetric.mixKeyAndHash(presharedKey ?? [])
            default:
                symmetric.mixKey(try dh(token))
            }
        }
        let payload = try symmetric.decryptAndHash(Array(rest))
        messageIndex += 1
        return payload
    }

    /// The transport keys: (this side sends with, this side receives with).
    func split() throws -> (send: SymmetricKey, receive: SymmetricKey) {
        guard isComplete else { throw EndToEndError.handshakeFailed("the handshake is not complete") }
        let keys = symmetric.split()
        return isInitiator
            ? (keys.initiatorToResponder, keys.responderToInitiator) : (keys.responderToInitiator, keys.initiatorToResponder)
    }

    private func dh(_ token: Token) throws -> [UInt8] {
        let local: Curve25519.KeyAgreement.PrivateKey?
        let remote: [UInt8]?
        switch token {
        case .ee: (local, remote) = (ephemeralKey, remoteEphemeral)
        case .ss: (local, remote) = (staticKey, remoteStatic)
        case .es: (local, remote) = isInitiator ? (ephemeralKey, remoteStatic) : (staticKey, remoteEphemeral)
        case .se: (local, remote) = isInitiator ? (staticKey, remoteEphemeral) : (ephemeralKey, remoteStatic)
        default: (local, remote) = (nil, nil)
        }
        guard let local, let remote else { throw EndToEndError.handshakeFailed("a key the pattern needs is missing") }
        return try X25519.agree(local, remote)
    }
}

/// X25519 on raw keys.
enum X25519 {
    static func agree(_ local: Curve25519.KeyAgreement.PrivateKey, _ remote: [UInt8]) throws -> [UInt8] {
        do {
            let publicKey = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: remote)
            return try local.sharedSecretFromKeyAgreement(with: publicKey).withUnsafeBytes { Array($0) }
        } catch {
            throw EndToEndError.handshakeFailed("X25519 refused the remote key")
        }
    }
}

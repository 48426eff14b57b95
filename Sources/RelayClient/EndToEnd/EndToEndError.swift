// Why an end-to-end operation failed, without any key or plaintext in the description.

/// An end-to-end encryption failure (extension 12). Descriptions never carry keys or plaintext.
public enum EndToEndError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A ciphertext did not open: tampered, from another session or epoch, or under another key.
    case authenticationFailed
    /// A handshake message was malformed, out of turn or under the wrong keys.
    case handshakeFailed(String)
    /// A sealed frame's `seq` is not above the last one opened under its key: a replay.
    case replayed(seq: UInt64)
    /// A sealed frame names an epoch whose key this side does not hold.
    case unknownEpoch(UInt64)
    /// A counter reached its end; the key must be replaced.
    case nonceExhausted
    /// A frame that must be sealed arrived in plaintext (the session is end-to-end).
    case plaintextRefused(String)
    /// A key or secret of the wrong length or encoding.
    case invalidKey(String)

    public var description: String {
        switch self {
        case .authenticationFailed: "a sealed payload failed authentication"
        case .handshakeFailed(let why): "the Noise handshake failed: \(why)"
        case .replayed(let seq): "a sealed frame with seq \(seq) was already opened or is out of order"
        case .unknownEpoch(let epoch): "no content key is held for epoch \(epoch)"
        case .nonceExhausted: "a key's nonces are used up"
        case .plaintextRefused(let what): "plaintext refused on an end-to-end session: \(what)"
        case .invalidKey(let what): "invalid key material: \(what)"
        }
    }
}

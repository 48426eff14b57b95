// Extension 12's two payloads a relay carries without reading: their shapes, checked by the relay
// and read by the client library.

/// The handshake pattern a `noise` payload carries.
public enum NoisePatternName: String, Sendable, CaseIterable {
    /// `Noise_IKpsk2_25519_ChaChaPoly_SHA256`: a phone pairing through an `e2e=1` link.
    case ikpsk2 = "IKpsk2"
    /// `Noise_KK_25519_ChaChaPoly_SHA256`: a phone the desktop has pinned.
    case kk = "KK"
}

/// The shapes of extension 12's payloads, judged from their JSON alone.
public enum EndToEndPayload {
    /// The largest Noise message (Noise Protocol Framework §3).
    public static let maxNoiseMessageBytes = 65535
    /// ChaCha20-Poly1305's tag: the shortest ciphertext.
    public static let tagBytes = 16

    /// A `{"type":"noise","pattern":…,"message":…,"deviceID":…}` payload's members, checked:
    /// nothing else, `pattern` one of ``NoisePatternName``, `message` base64url of 1…65535 bytes,
    /// `deviceID` a compact identifier.
    public static func noise(_ members: [String: JSONValue]) -> Result<NoisePatternName, MobileError> {
        if let key = unexpectedKey(members, allowed: ["type", "pattern", "message", "deviceID"]) {
            return .failure(invalid("Unexpected field '\(key)' in noise payload."))
        }
        guard case .string(let patternName)? = members["pattern"], let pattern = NoisePatternName(rawValue: patternName) else {
            return .failure(invalid("Noise payload pattern must be \"IKpsk2\" or \"KK\"."))
        }
        guard case .string(let message)? = members["message"], let count = Base64URL.decodedCount(message),
            count > 0, count <= maxNoiseMessageBytes
        else {
            return .failure(invalid("Noise payload message must be base64url without padding, 1 to \(maxNoiseMessageBytes) bytes."))
        }
        guard case .string(let deviceID)? = members["deviceID"], isCompactIdentifier(deviceID) else {
            return .failure(invalid("Noise payload deviceID must be a compact identifier."))
        }
        return .success(pattern)
    }

    /// A `{"type":"sealed","ciphertext":…,"epoch":…}` payload's members, checked: nothing else,
    /// `ciphertext` base64url of at least a tag, `epoch` (required when `epochRequired`) a
    /// non-negative integer. Returns the epoch, if any.
    public static func sealed(_ members: [String: JSONValue], epochRequired: Bool) -> Result<UInt64?, MobileError> {
        if let key = unexpectedKey(members, allowed: ["type", "ciphertext", "epoch"]) {
            return .failure(invalid("Unexpected field '\(key)' in sealed payload."))
        }
        guard case .string(let ciphertext)? = members["ciphertext"], let count = Base64URL.decodedCount(ciphertext),
            count >= tagBytes
        else {
            return .failure(invalid("Sealed payload ciphertext must be base64url without padding, at least \(tagBytes) bytes."))
        }
        guard let epochValue = members["epoch"] else {
            return epochRequired ? .failure(invalid("Sealed payload requires epoch.")) : .success(nil)
        }
        guard case .number(let number) = epochValue, number.isInteger, let epoch = number.uint64 else {
            return .failure(invalid("Sealed payload epoch must be a non-negative integer."))
        }
        return .success(epoch)
    }

    /// The refusal of a plaintext command by a relay with `E2E_MODE=required`.
    public static let requiredError = MobileError(.e2eRequired, "This relay accepts only end-to-end encrypted commands.")

    private static func unexpectedKey(_ members: [String: JSONValue], allowed: Set<String>) -> String? {
        members.keys.filter { !allowed.contains($0) || !$0.utf8.allSatisfy { $0 < 0x80 } }
            .min(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    private static func invalid(_ message: String) -> MobileError { MobileError(.invalidCommand, message) }
}

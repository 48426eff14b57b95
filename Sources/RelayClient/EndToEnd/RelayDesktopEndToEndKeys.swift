// What a desktop keeps (in its keychain) to stay end-to-end with its phones across restarts.

import Crypto
import Foundation
import RelayProtocol

/// A desktop's end-to-end material (extension 12): its static key, the phones it pinned with the
/// grant each was approved with, and the last epoch it used. Pass it to
/// ``RelayDesktopClient/init(relayURL:identity:configuration:firstSeq:endToEnd:onEndToEndKeysChanged:)``
/// and store every value the change callback gives.
///
/// The description shows no key.
public struct RelayDesktopEndToEndKeys: Sendable, Equatable, Codable, CustomStringConvertible {
    /// A phone the desktop pinned: its static public key and what it was allowed.
    public struct PinnedPhone: Sendable, Equatable, Codable {
        /// The phone's static X25519 public key (32 bytes).
        public var staticKey: Data
        /// The grant made when it was approved (or by ``RelayDesktopClient/setScope(of:to:)``):
        /// the desktop enforces `view` and `allowedCommands` on sealed commands, which the relay
        /// cannot read.
        public var scope: DeviceScope
        /// The command names allowed; nil: all.
        public var allowedCommands: [String]?
        /// `ps` of the link it paired through: a phone that lost track of being pinned may run
        /// IKpsk2 again, and its static key must still be the pinned one.
        public var pairingSecret: Data?

        public init(staticKey: Data, scope: DeviceScope = .control, allowedCommands: [String]? = nil, pairingSecret: Data? = nil) {
            self.staticKey = staticKey
            self.scope = scope
            self.allowedCommands = allowedCommands
            self.pairingSecret = pairingSecret
        }
    }

    /// A phone that began IKpsk2 with a join link's pairing secret and has not proved it with a
    /// sealed frame yet (a `view` phone never can: the relay refuses its sealed frames, so it
    /// keeps pairing with IKpsk2 and this secret).
    public struct UnpinnedPhone: Sendable, Equatable, Codable {
        /// `ps` of the link it joined through (32 bytes).
        public var pairingSecret: Data
        /// The grant its approval carried.
        public var scope: DeviceScope
        /// The command names allowed; nil: all.
        public var allowedCommands: [String]?

        public init(pairingSecret: Data, scope: DeviceScope = .control, allowedCommands: [String]? = nil) {
            self.pairingSecret = pairingSecret
            self.scope = scope
            self.allowedCommands = allowedCommands
        }
    }

    /// The desktop's static X25519 private key (32 bytes): its public half is `dk` in join links.
    public var staticPrivateKey: Data
    /// Pinned phones by device id.
    public var pinnedPhones: [String: PinnedPhone]
    /// Phones bound to a pairing secret, not pinned yet, by device id.
    public var unpinnedPhones: [String: UnpinnedPhone] = [:]
    /// The last content-key epoch used: a desktop started again begins the next one.
    public var lastEpoch: UInt64?

    /// New material: a fresh static key, nothing pinned.
    public static func generate() -> RelayDesktopEndToEndKeys {
        RelayDesktopEndToEndKeys(staticPrivateKey: Curve25519.KeyAgreement.PrivateKey().rawRepresentation, pinnedPhones: [:], lastEpoch: nil)
    }

    public init(staticPrivateKey: Data, pinnedPhones: [String: PinnedPhone], lastEpoch: UInt64?) {
        self.staticPrivateKey = staticPrivateKey
        self.pinnedPhones = pinnedPhones
        self.lastEpoch = lastEpoch
    }

    /// The static public key (`dk`).
    public var staticPublicKey: Data {
        get throws {
            do {
                return try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: staticPrivateKey).publicKey.rawRepresentation
            } catch {
                throw EndToEndError.invalidKey("the desktop's static private key is not 32 bytes")
            }
        }
    }

    public var description: String {
        "RelayDesktopEndToEndKeys(pinnedPhones: \(pinnedPhones.keys.sorted()), unpinnedPhones: \(unpinnedPhones.keys.sorted()), lastEpoch: \(lastEpoch.map(String.init) ?? "none"))"
    }
}

// What a phone keeps (in its keychain) to stay end-to-end with its desktop across launches.

import Crypto
import Foundation

/// A phone's end-to-end material for one session (extension 12), carried in
/// ``RelayPhoneCredentials/endToEnd`` so the app stores it with the token, every time it changes.
///
/// The description shows no key.
public struct RelayPhoneEndToEndKeys: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The phone's static X25519 private key (32 bytes), made at the join.
    public var staticPrivateKey: Data
    /// The desktop's static X25519 public key (`dk` of the join link): the pin.
    public var desktopStaticKey: Data
    /// `ps` of the join link, kept until the desktop has pinned this phone (IKpsk2 needs it).
    public var pairingSecret: Data?
    /// Whether the desktop has opened a sealed frame of this phone, so KK is used.
    public var pinned: Bool
    /// Content keys by epoch (the newest ``maxEpochKeys``), to open history replayed after a
    /// reconnect.
    public var epochKeys: [UInt64: Data]

    /// Epoch keys kept; older ones are forgotten.
    public static let maxEpochKeys = 16

    /// Keys for a phone joining through an `e2e=1` link: a new static key, the link's pin and
    /// secret.
    public init(link: RelayEndToEndLink) {
        staticPrivateKey = Curve25519.KeyAgreement.PrivateKey().rawRepresentation
        desktopStaticKey = Data(link.desktopStaticKey)
        pairingSecret = Data(link.pairingSecret)
        pinned = false
        epochKeys = [:]
    }

    public var description: String {
        "RelayPhoneEndToEndKeys(pinned: \(pinned), epochs: \(epochKeys.keys.sorted()))"
    }

    mutating func remember(epoch: UInt64, key: [UInt8]) {
        epochKeys[epoch] = Data(key)
        while epochKeys.count > Self.maxEpochKeys, let oldest = epochKeys.keys.min() { epochKeys[oldest] = nil }
    }
}

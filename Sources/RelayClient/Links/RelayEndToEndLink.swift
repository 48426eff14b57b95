// Extension 12's members of a join link: e2e=1, the desktop's static key and the pairing secret.

import RelayProtocol

/// The end-to-end members of a join link's fragment (extension 12): `e2e=1`, `dk` (the desktop's
/// static X25519 public key) and `ps` (a 32-byte secret made for this join token), base64url.
/// A fragment never reaches a server, so the relay never learns `ps`.
public struct RelayEndToEndLink: Sendable, Equatable, CustomStringConvertible {
    /// `dk`: 32 bytes.
    public var desktopStaticKey: [UInt8]
    /// `ps`: 32 bytes.
    public var pairingSecret: [UInt8]

    public init(desktopStaticKey: [UInt8], pairingSecret: [UInt8]) throws(RelayJoinLinkError) {
        guard desktopStaticKey.count == 32 else { throw .invalidEndToEnd("dk must be 32 bytes") }
        guard pairingSecret.count == 32 else { throw .invalidEndToEnd("ps must be 32 bytes") }
        self.desktopStaticKey = desktopStaticKey
        self.pairingSecret = pairingSecret
    }

    /// The secret only by its length.
    public var description: String { "RelayEndToEndLink(dk: \(Base64URL.encode(desktopStaticKey)), ps: <32 bytes>)" }

    var parameters: [RelayJoinLink.Parameter] {
        [.init(name: "e2e", value: "1"), .init(name: "dk", value: Base64URL.encode(desktopStaticKey)),
         .init(name: "ps", value: Base64URL.encode(pairingSecret))]
    }

    /// Reads `e2e`, `dk` and `ps` out of `parameters` (removing them); nil without `e2e`.
    static func extract(from parameters: inout [RelayJoinLink.Parameter]) throws(RelayJoinLinkError) -> RelayEndToEndLink? {
        func take(_ name: String) throws(RelayJoinLinkError) -> String? {
            let matches = parameters.filter { $0.name == name }
            guard matches.count <= 1 else { throw .repeatedParameter(name) }
            parameters.removeAll { $0.name == name }
            return matches.first?.value
        }
        let flag = try take("e2e")
        let dk = try take("dk")
        let ps = try take("ps")
        guard let flag else {
            guard dk == nil, ps == nil else { throw .invalidEndToEnd("dk and ps come only with e2e=1") }
            return nil
        }
        guard flag == "1" else { throw .invalidEndToEnd("e2e must be 1") }
        guard let dk, let key = Base64URL.decode(dk) else { throw .invalidEndToEnd("dk must be base64url without padding") }
        guard let ps, let secret = Base64URL.decode(ps) else { throw .invalidEndToEnd("ps must be base64url without padding") }
        return try RelayEndToEndLink(desktopStaticKey: key, pairingSecret: secret)
    }
}

// The desktop's side of extension 12: answering handshakes, pinning phones, the session's content
// key and its epochs, opening and checking sealed commands. No I/O: RelayDesktopClient sends what
// it returns.

import Crypto
import Foundation
import RelayProtocol

/// The desktop's end-to-end state for its session.
struct DesktopEndToEnd: Sendable {
    /// What a phone's frame led to, in order.
    enum Outcome: Sendable, Equatable {
        /// Send this `noise` payload to the phones (the reply names its device).
        case reply(JSONValue)
        /// A phone completed a handshake.
        case secured(deviceID: String, pattern: NoisePatternName)
        /// A phone that paired through IKpsk2 proved it holds the pairing secret: pinned.
        case pinned(deviceID: String)
        /// A sealed command, opened and checked: the envelope as a plaintext one would have come.
        case command(JSONValue)
        /// A frame that failed: tampered, replayed, unknown, or plaintext.
        case refused(deviceID: String?, EndToEndError)
        /// A command that opened but breaks the protocol's rules or this phone's grant.
        case commandRefused(deviceID: String, MobileError)
    }

    private struct Peer: Sendable {
        var send: SymmetricKey
        var receive: SymmetricKey
        var staticKey: [UInt8]
        var lastSeq: UInt64?
        /// Paired through IKpsk2 and not yet proved the pairing secret by a sealed frame.
        var awaitingPin: Bool
    }

    /// The secret of a join link, and the grant approved with it.
    private struct Binding: Sendable {
        var secret: [UInt8]
        var grant: DeviceGrant?
    }

    private(set) var keys: RelayDesktopEndToEndKeys
    let sessionID: String
    private let staticKey: Curve25519.KeyAgreement.PrivateKey
    private(set) var epoch: UInt64
    private var contentKey: [UInt8]
    /// The secret of the join link shown last, and the grant its approval carried.
    private var pairing: Binding?
    private var peers: [String: Peer] = [:]
    private let limits = MobileValidationLimits()

    /// Begins the next epoch after `keys.lastEpoch` with a new content key: a desktop started
    /// again never reuses a (key, nonce) pair, whatever its first `seq`.
    init(keys: RelayDesktopEndToEndKeys, sessionID: String) throws {
        do { staticKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: keys.staticPrivateKey) } catch {
            throw EndToEndError.invalidKey("the desktop's static private key is not 32 bytes")
        }
        self.keys = keys
        self.sessionID = sessionID
        epoch = keys.lastEpoch.map { $0 &+ 1 } ?? 0
        contentKey = randomKeyBytes()
        self.keys.lastEpoch = epoch
    }

    /// The join link's end-to-end members for a new join token: a new pairing secret.
    mutating func newPairingSecret() throws(RelayJoinLinkError) -> RelayEndToEndLink {
        let secret = randomKeyBytes()
        pairing = Binding(secret: secret, grant: nil)
        return try RelayEndToEndLink(desktopStaticKey: Array(staticKey.publicKey.rawRepresentation), pairingSecret: secret)
    }

    /// The desktop approved a phone with `grant`: the phone that redeems the current secret gets it.
    mutating func approved(grant: DeviceGrant?) {
        pairing?.grant = grant
    }

    /// Pinned phones and the phones with live handshake keys.
    var securedDevices: [String] { peers.keys.sorted() }

    // MARK: Inbound

    /// A `noise` envelope from a phone, as the relay forwarded it (stamped with `relayDeviceID`).
    mutating func handshake(_ envelope: JSONValue) -> [Outcome] {
        let deviceID = envelope["relayDeviceID"]?.stringValue
        guard let deviceID, let payload = envelope["payload"], payload["deviceID"]?.stringValue == deviceID,
            let pattern = payload["pattern"]?.stringValue.flatMap(NoisePatternName.init(rawValue:)),
            let encoded = payload["message"]?.stringValue, let message = Base64URL.decode(encoded)
        else { return [.refused(deviceID: deviceID, .handshakeFailed("a noise message that is not for this desktop's device"))] }
        do {
            let pin = keys.pinnedPhones[deviceID]
            var noise: NoiseHandshake
            var binding: Binding?
            switch pattern {
            case .ikpsk2:
                // A bound phone's secret, or a pinned phone's (its static key must match the pin).
                let bound = keys.unpinnedPhones[deviceID].map {
                    Binding(secret: Array($0.pairingSecret), grant: DeviceGrant(scope: $0.scope, allowedCommands: $0.allowedCommands))
                } ?? pin?.pairingSecret.map { Binding(secret: Array($0), grant: nil) }
                // The secret of the last link shown only goes to a phone not pinned yet.
                guard let secret = bound ?? (pin == nil ? pairing : nil) else {
                    throw EndToEndError.handshakeFailed("no pairing secret is waiting for this phone")
                }
                binding = secret
                noise = try NoiseHandshake(
                    pattern: .ikpsk2, initiator: false, prologue: HandshakePrologue.bytes(pattern: .ikpsk2, sessionID: sessionID, deviceID: deviceID),
                    staticKey: staticKey, remoteStatic: nil, presharedKey: secret.secret)
            case .kk:
                guard let pin else { throw EndToEndError.handshakeFailed("KK from a phone this desktop has not pinned") }
                noise = try NoiseHandshake(
                    pattern: .kk, initiator: false, prologue: HandshakePrologue.bytes(pattern: .kk, sessionID: sessionID, deviceID: deviceID),
                    staticKey: staticKey, remoteStatic: Array(pin.staticKey))
            }
            _ = try noise.readMessage(message)
            guard let remote = noise.remoteStatic else { throw EndToEndError.handshakeFailed("no static key") }
            if let pin, Array(pin.staticKey) != remote {
                throw EndToEndError.handshakeFailed("the phone's static key is not the one pinned for its device")
            }
            let grant = EpochKeyGrant(deviceID: deviceID, epoch: epoch, contentKey: contentKey)
            let reply = try noise.writeMessage(payload: Array(grant.json.serialized.utf8))
            let split = try noise.split()
            // The secret is this phone's from now on (another phone cannot redeem the token).
            if let binding, pin == nil {
                keys.unpinnedPhones[deviceID] = .init(
                    pairingSecret: Data(binding.secret), scope: binding.grant?.scope ?? .control, allowedCommands: binding.grant?.allowedCommands)
                if pairing?.secret == binding.secret { pairing = nil }
            }
            peers[deviceID] = Peer(send: split.send, receive: split.receive, staticKey: remote, lastSeq: nil, awaitingPin: pin == nil)
            let replyPayload: JSONValue = [
                "type": "noise", "pattern": .string(pattern.rawValue), "message": .string(Base64URL.encode(reply)),
                "deviceID": .string(deviceID),
            ]
            return [.reply(replyPayload), .secured(deviceID: deviceID, pattern: pattern)]
        } catch let error as EndToEndError {
            return [.refused(deviceID: deviceID, error)]
        } catch {
            return [.refused(deviceID: deviceID, .handshakeFailed("unreadable"))]
        }
    }

    /// A `sealed` envelope from a phone: opened with its handshake key, pinned if it paired just
    /// now, then checked as the relay checks a plaintext command and against the grant.
    mutating func open(_ envelope: JSONValue) -> [Outcome] {
        let deviceID = envelope["relayDeviceID"]?.stringValue
        guard let deviceID, var peer = peers[deviceID] else {
            return [.refused(deviceID: deviceID, .handshakeFailed("a sealed frame from a phone with no handshake"))]
        }
        guard let shell = EnvelopeShell(envelope: envelope), let ciphertext = envelope["payload"]?["ciphertext"]?.stringValue else {
            return [.refused(deviceID: deviceID, .authenticationFailed)]
        }
        if let last = peer.lastSeq, shell.seq <= last { return [.refused(deviceID: deviceID, .replayed(seq: shell.seq))] }
        let plaintext: JSONValue
        do { plaintext = try shell.open(ciphertext, key: peer.receive) } catch {
            return [.refused(deviceID: deviceID, .authenticationFailed)]
        }
        peer.lastSeq = shell.seq
        var outcomes: [Outcome] = []
        if peer.awaitingPin {
            peer.awaitingPin = false
            let bound = keys.unpinnedPhones.removeValue(forKey: deviceID)
            keys.pinnedPhones[deviceID] = .init(
                staticKey: Data(peer.staticKey), scope: bound?.scope ?? .control, allowedCommands: bound?.allowedCommands,
                pairingSecret: bound?.pairingSecret)
            outcomes.append(.pinned(deviceID: deviceID))
        }
        peers[deviceID] = peer
        if plaintext.type == PhoneEndToEnd.helloType { return outcomes }
        // The envelope a plaintext command would have been, judged by the relay's own rules.
        var members = shell.members
        members["payload"] = plaintext
        for key in ["relayConnectionID", "relayDeviceID"] { if let value = envelope[key] { members[key] = value } }
        let opened = JSONValue.object(members)
        switch MobileFrameValidator.classify(.success(opened), sessionID: sessionID, limits: limits) {
        case .success(.command(_, let name)):
            if let error = MobileFrameValidator.validateCommandName(opened, limits: limits) {
                outcomes.append(.commandRefused(deviceID: deviceID, error))
            } else if let pin = keys.pinnedPhones[deviceID],
                let denial = DeviceGrant(scope: pin.scope, allowedCommands: pin.allowedCommands).denial(ofCommand: name)
            {
                outcomes.append(.commandRefused(deviceID: deviceID, denial))
            } else {
                outcomes.append(.command(opened))
            }
        case .success:
            outcomes.append(.commandRefused(deviceID: deviceID, MobileError(.invalidCommand, "Only command payloads are accepted from mobile clients.")))
        case .failure(let error):
            outcomes.append(.commandRefused(deviceID: deviceID, error))
        }
        return outcomes
    }

    // MARK: Outbound

    /// A desktop payload sealed under the epoch's content key for the envelope `shell`.
    func seal(_ payload: JSONValue, shell: EnvelopeShell) throws -> JSONValue {
        ["type": "sealed", "epoch": .int(epoch), "ciphertext": .string(try shell.seal(payload, key: SymmetricKey(data: contentKey)))]
    }

    /// Forgets `deviceID` (revoked) and starts a new epoch: returns the phones to send the new key
    /// to, in `rekey` frames made by ``rekey(for:shell:)``.
    mutating func revoke(_ deviceID: String) -> [String] {
        keys.pinnedPhones[deviceID] = nil
        keys.unpinnedPhones[deviceID] = nil
        peers[deviceID] = nil
        epoch &+= 1
        contentKey = randomKeyBytes()
        keys.lastEpoch = epoch
        return securedDevices
    }

    /// The `rekey` payload giving `deviceID` the current epoch's key, sealed with its handshake key.
    func rekey(for deviceID: String, shell: EnvelopeShell) throws -> JSONValue {
        guard let peer = peers[deviceID] else { throw EndToEndError.handshakeFailed("no handshake with \(deviceID)") }
        let grant = EpochKeyGrant(deviceID: deviceID, epoch: epoch, contentKey: contentKey)
        return ["type": "rekey", "deviceID": .string(deviceID), "epoch": .int(epoch),
                "ciphertext": .string(try shell.seal(grant.json, key: peer.send))]
    }

    /// A grant changed by `/devices/scope`: enforced on the phone's sealed commands from now on.
    mutating func setGrant(_ grant: DeviceGrant, of deviceID: String) {
        if keys.pinnedPhones[deviceID] != nil {
            keys.pinnedPhones[deviceID]?.scope = grant.scope
            keys.pinnedPhones[deviceID]?.allowedCommands = grant.allowedCommands
        } else if keys.unpinnedPhones[deviceID] != nil {
            keys.unpinnedPhones[deviceID]?.scope = grant.scope
            keys.unpinnedPhones[deviceID]?.allowedCommands = grant.allowedCommands
        }
    }
}

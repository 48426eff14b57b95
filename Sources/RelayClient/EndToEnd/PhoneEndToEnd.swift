// The phone's side of extension 12: its handshakes, the desktop's epoch keys, and the sealing and
// opening of envelopes. No I/O: RelayPhoneClient sends what it returns.

import Crypto
import Foundation
import RelayProtocol

/// The phone's end-to-end state for one session.
struct PhoneEndToEnd: Sendable {
    /// What one desktop envelope turned out to be.
    enum Inbound {
        /// A sealed envelope, opened: its plaintext payload.
        case opened(JSONValue)
        /// This phone's handshake completed: the epoch's key is held, commands can be sealed.
        case secured(epoch: UInt64, pattern: NoisePatternName)
        /// The desktop started a new epoch and sent this phone its key.
        case rekeyed(epoch: UInt64)
        /// A handshake reply or rekey for another phone, or one that does not read (stale or
        /// forged): nothing to do.
        case ignored
        /// A sealed envelope of an epoch this phone has no key for yet: hold it, and handshake.
        case unknownEpoch(UInt64)
        /// Refused: tampered, replayed, from another session, or plaintext.
        case refused(EndToEndError)
    }

    /// The plaintext type of the sealed frame a phone sends right after IKpsk2, so the desktop can
    /// pin it without waiting for a command.
    static let helloType = "e2e.hello"

    private(set) var keys: RelayPhoneEndToEndKeys
    let sessionID: String
    let deviceID: String
    private var handshake: NoiseHandshake?
    private var transport: (send: SymmetricKey, receive: SymmetricKey)?
    /// The last `seq` opened per epoch (a frame at or below it is a replay) and of a rekey under
    /// the current handshake keys.
    private var lastOpened: [UInt64: UInt64] = [:]
    private var lastRekeySeq: UInt64?
    /// The `seq` of the reply that gave the current handshake keys: a rekey at or below it was
    /// sealed for an earlier handshake (the history replays those).
    private var transportSince: UInt64?
    private(set) var currentEpoch: UInt64?
    /// The pattern of the handshake under way.
    var handshakePattern: NoisePatternName? { handshake?.pattern }

    init(keys: RelayPhoneEndToEndKeys, sessionID: String, deviceID: String) {
        self.keys = keys
        self.sessionID = sessionID
        self.deviceID = deviceID
    }

    /// A handshake completed and none is under way: commands can be sealed.
    var isSecured: Bool { transport != nil && handshake == nil }
    var isHandshaking: Bool { handshake != nil }

    /// Starts a handshake (IKpsk2 until the desktop pinned this phone, then KK) and returns the
    /// `noise` payload to send. Sealing waits until its reply.
    mutating func startHandshake() throws -> JSONValue {
        let pattern: NoisePatternName = keys.pinned || keys.pairingSecret == nil ? .kk : .ikpsk2
        return try startHandshake(pattern: pattern)
    }

    mutating func startHandshake(pattern: NoisePatternName) throws -> JSONValue {
        let staticKey: Curve25519.KeyAgreement.PrivateKey
        do { staticKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: keys.staticPrivateKey) } catch {
            throw EndToEndError.invalidKey("the phone's static key is not 32 bytes")
        }
        var noise = try NoiseHandshake(
            pattern: pattern, initiator: true,
            prologue: HandshakePrologue.bytes(pattern: pattern, sessionID: sessionID, deviceID: deviceID),
            staticKey: staticKey, remoteStatic: Array(keys.desktopStaticKey),
            presharedKey: pattern == .ikpsk2 ? keys.pairingSecret.map(Array.init) : nil)
        let message = try noise.writeMessage(payload: [])
        handshake = noise
        transport = nil
        return ["type": "noise", "pattern": .string(pattern.rawValue), "message": .string(Base64URL.encode(message)),
                "deviceID": .string(deviceID)]
    }

    /// A new connection: the last one's handshake keys are gone (its `seq` starts again), the
    /// epoch keys and what was opened under them stay.
    mutating func newConnection() {
        handshake = nil
        transport = nil
        lastRekeySeq = nil
        transportSince = nil
    }

    /// After IKpsk2 the desktop pins this phone when it opens its first sealed frame; the phone
    /// uses KK from then on.
    mutating func markPinned() {
        keys.pinned = true
    }

    /// A KK handshake got no answer: the desktop never pinned this phone (its first sealed frame
    /// was lost), so the next handshake proves the pairing secret again with IKpsk2.
    mutating func markUnpinned() {
        guard keys.pairingSecret != nil else { return }
        keys.pinned = false
        handshake = nil
    }

    /// Reads one desktop envelope of an end-to-end session.
    mutating func receive(_ envelope: JSONValue) -> Inbound {
        guard let payload = envelope["payload"], let type = payload.type, let shell = EnvelopeShell(envelope: envelope) else {
            return .refused(.plaintextRefused("a desktop frame that is not an envelope"))
        }
        switch type {
        case "noise": return handshakeReply(payload, shell: shell)
        case "rekey": return rekey(payload, shell: shell)
        case "sealed": return open(payload, shell: shell)
        default: return .refused(.plaintextRefused("a plaintext '\(type)' envelope"))
        }
    }

    /// A reply that does not read leaves the handshake waiting: a replayed history holds this
    /// phone's replies to earlier handshakes, and the one for this handshake may follow.
    private mutating func handshakeReply(_ payload: JSONValue, shell: EnvelopeShell) -> Inbound {
        guard payload["deviceID"]?.stringValue == deviceID, var noise = handshake,
            payload["pattern"]?.stringValue == noise.pattern.rawValue,
            let encoded = payload["message"]?.stringValue, let message = Base64URL.decode(encoded)
        else { return .ignored }
        do {
            let grantJSON = try JSONValue.parse(try noise.readMessage(message))
            let grant = try EpochKeyGrant(json: grantJSON)
            guard grant.deviceID == deviceID else { throw EndToEndError.handshakeFailed("the reply names another device") }
            transport = try noise.split()
            handshake = nil
            lastRekeySeq = nil
            transportSince = shell.seq
            keys.remember(epoch: grant.epoch, key: grant.contentKey)
            currentEpoch = max(currentEpoch ?? grant.epoch, grant.epoch)
            return .secured(epoch: grant.epoch, pattern: noise.pattern)
        } catch {
            // Not this handshake's reply: one to an earlier handshake (replayed history), or
            // forged. The handshake keeps waiting; the client's timeout starts another.
            return .ignored
        }
    }

    private mutating func rekey(_ payload: JSONValue, shell: EnvelopeShell) -> Inbound {
        guard payload["deviceID"]?.stringValue == deviceID else { return .ignored }
        // Sealed for an earlier handshake's keys (a replayed history): not for these.
        if let since = transportSince, shell.seq <= since { return .ignored }
        guard let transport, let ciphertext = payload["ciphertext"]?.stringValue, let epoch = payload["epoch"]?.uint64Value else {
            return .refused(.handshakeFailed("a rekey arrived without handshake keys"))
        }
        if let last = lastRekeySeq, shell.seq <= last { return .refused(.replayed(seq: shell.seq)) }
        do {
            let grant = try EpochKeyGrant(json: try shell.open(ciphertext, key: transport.receive))
            guard grant.epoch == epoch, grant.deviceID == deviceID else { return .refused(.authenticationFailed) }
            lastRekeySeq = shell.seq
            keys.remember(epoch: epoch, key: grant.contentKey)
            currentEpoch = max(currentEpoch ?? epoch, epoch)
            return .rekeyed(epoch: epoch)
        } catch let error as EndToEndError {
            return .refused(error)
        } catch {
            return .refused(.authenticationFailed)
        }
    }

    private mutating func open(_ payload: JSONValue, shell: EnvelopeShell) -> Inbound {
        guard let ciphertext = payload["ciphertext"]?.stringValue, let epoch = payload["epoch"]?.uint64Value else {
            return .refused(.authenticationFailed)
        }
        guard let key = keys.epochKeys[epoch] else { return .unknownEpoch(epoch) }
        if let last = lastOpened[epoch], shell.seq <= last { return .refused(.replayed(seq: shell.seq)) }
        do {
            let opened = try shell.open(ciphertext, key: SymmetricKey(data: key))
            lastOpened[epoch] = shell.seq
            return .opened(opened)
        } catch let error as EndToEndError {
            return .refused(error)
        } catch {
            return .refused(.authenticationFailed)
        }
    }

    /// The `sealed` payload of a command envelope: `plaintext` (the contract's `payload` object)
    /// under the handshake's phone-to-desktop key, nonce = `seq`, authenticating the shell.
    func seal(_ plaintext: JSONValue, shell: EnvelopeShell) throws -> JSONValue {
        guard let transport, handshake == nil else { throw EndToEndError.handshakeFailed("no handshake has completed on this connection") }
        return ["type": "sealed", "ciphertext": .string(try shell.seal(plaintext, key: transport.send))]
    }
}

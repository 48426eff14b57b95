// Extension 12's associated data and nonces: what binds a sealed payload to its envelope.

import Crypto
import Foundation
import RelayProtocol

/// The plaintext shell of an envelope (`schemaVersion`, `sessionID`, `seq`, `timestamp`): the
/// relay routes, guards and records by it, and every sealed payload authenticates it, so a
/// ciphertext moved to another session, `seq` or time does not open.
/// `package`: the harness measures sealing and opening with it.
package struct EnvelopeShell: Sendable {
    var members: [String: JSONValue]
    package let seq: UInt64

    /// The shell of a received envelope; nil without an integer `seq`.
    package init?(envelope: JSONValue) {
        guard let seq = envelope["seq"]?.uint64Value else { return nil }
        var members: [String: JSONValue] = [:]
        for key in Self.keys { if let value = envelope[key] { members[key] = value } }
        self.members = members
        self.seq = seq
    }

    /// The shell of an envelope about to be sent.
    package init(sessionID: String, seq: UInt64, timestamp: String) {
        members = ["schemaVersion": 2, "sessionID": .string(sessionID), "seq": .int(seq), "timestamp": .string(timestamp)]
        self.seq = seq
    }

    static let keys = ["schemaVersion", "sessionID", "seq", "timestamp"]

    /// The associated data: the shell as compact JSON, keys sorted byte-wise.
    var associatedData: [UInt8] { Array(JSONValue.object(members).serialized.utf8) }

    /// `payload` sealed under `key` with this envelope's nonce and associated data, base64url.
    package func seal(_ payload: JSONValue, key: SymmetricKey) throws -> String {
        let ciphertext = try ChaChaPolyBox.seal(
            Array(payload.serialized.utf8), key: key, nonce: ChaChaPolyBox.envelopeNonce(seq: seq), associatedData: associatedData)
        return Base64URL.encode(ciphertext)
    }

    /// The JSON object sealed in `ciphertext` (base64url) under `key` for this envelope.
    package func open(_ ciphertext: String, key: SymmetricKey) throws -> JSONValue {
        guard let bytes = Base64URL.decode(ciphertext) else { throw EndToEndError.authenticationFailed }
        let plaintext = try ChaChaPolyBox.open(bytes, key: key, nonce: ChaChaPolyBox.envelopeNonce(seq: seq), associatedData: associatedData)
        guard let value = try? JSONValue.parse(plaintext), value.objectValue != nil else { throw EndToEndError.authenticationFailed }
        return value
    }

    /// The whole envelope with `payload`, as JSON text.
    package func envelope(payload: JSONValue) -> String {
        var all = members
        all["payload"] = payload
        return JSONValue.object(all).serialized
    }
}

/// The prologue both sides of a handshake mix in: `codexchat-relay-e2e/1`, a zero byte, the
/// session id, and for KK another zero byte and the device id.
enum HandshakePrologue {
    static func bytes(pattern: NoisePatternName, sessionID: String, deviceID: String) -> [UInt8] {
        var out = Array("codexchat-relay-e2e/1".utf8) + [0] + Array(sessionID.utf8)
        if pattern == .kk { out += [0] + Array(deviceID.utf8) }
        return out
    }
}

/// The handshake reply's payload and a rekey's plaintext: `{"deviceID":…,"epoch":…,"contentKey":…}`.
struct EpochKeyGrant: Sendable {
    var deviceID: String
    var epoch: UInt64
    var contentKey: [UInt8]

    var json: JSONValue {
        ["deviceID": .string(deviceID), "epoch": .int(epoch), "contentKey": .string(Base64URL.encode(contentKey))]
    }

    init(deviceID: String, epoch: UInt64, contentKey: [UInt8]) {
        self.deviceID = deviceID
        self.epoch = epoch
        self.contentKey = contentKey
    }

    init(json: JSONValue) throws {
        guard let deviceID = json["deviceID"]?.stringValue, let epoch = json["epoch"]?.uint64Value,
            let encoded = json["contentKey"]?.stringValue, let key = Base64URL.decode(encoded), key.count == 32
        else { throw EndToEndError.handshakeFailed("the epoch key payload is malformed") }
        self.init(deviceID: deviceID, epoch: epoch, contentKey: key)
    }
}

/// 32 random bytes from the system's generator (keys and pairing secrets).
func randomKeyBytes() -> [UInt8] {
    SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
}

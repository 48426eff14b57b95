// Writes and reads the cross-instance envelope (PROTOCOL §6.4) and its canonical signed form (§6.5).

import RelayCore
import RelayProtocol

/// Writes and reads envelopes. No Foundation: the canonical form is built byte by byte.
enum EnvelopeCodec {
    /// The only schema version written and accepted.
    static let schemaVersion: UInt8 = 1

    /// The signed material (§6.5): the compact envelope without `signature`, keys in the contract's
    /// order, `target_device_id` `null` when absent, strings escaped as serde_json does. Our one
    /// extension, `traceparent`, follows `nonce` only when present, so the signature covers it and
    /// an envelope without it signs exactly as the contract says.
    static func canonical(_ envelope: BusEnvelope, schemaVersion: UInt8 = EnvelopeCodec.schemaVersion) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(envelope.payload.count + envelope.sessionID.utf8.count + 192)
        appendCanonical(envelope, schemaVersion: schemaVersion, to: &buffer)
        return buffer
    }

    /// The wire form (§6.4): the canonical text with `"signature"` appended as the last key —
    /// signed by `signer`, or `null` without one.
    static func encode(_ envelope: BusEnvelope, signer: EnvelopeSigner?) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(envelope.payload.count + envelope.sessionID.utf8.count + 256)
        appendCanonical(envelope, schemaVersion: schemaVersion, to: &buffer)
        let signature = signer?.signature(for: buffer)
        buffer.removeLast()  // the closing brace
        append(#","signature":"#, to: &buffer)
        if let signature {
            appendJSONString(signature, to: &buffer)
        } else {
            append("null", to: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
        return buffer
    }

    /// Reads an envelope as the reference (serde) does: unknown keys ignored, `issued_at_ms`
    /// 0 and `nonce` `""` when missing, `target_device_id` and `signature` nil when missing or
    /// `null`, `schema_version` an integer in 0...255. Nil when the bytes are not such an
    /// envelope.
    static func decode(_ bytes: [UInt8]) -> WireEnvelope? {
        guard case .object(let members)? = try? JSONValue.parse(bytes),
            case .number(let version)? = members["schema_version"], let schemaVersion = version.uint64.flatMap(UInt8.init(exactly:)),
            case .string(let sessionID)? = members["session_id"],
            case .string(let sourceInstanceID)? = members["source_instance_id"],
            case .string(let targetName)? = members["target"], let target = BusTarget(rawValue: targetName),
            case .string(let payload)? = members["payload"]
        else { return nil }

        var targetDeviceID: String?
        switch members["target_device_id"] {
        case nil, .null?: targetDeviceID = nil
        case .string(let value)?: targetDeviceID = value
        default: return nil
        }
        var issuedAtMillis: Int64 = 0
        switch members["issued_at_ms"] {
        case nil: issuedAtMillis = 0
        case .number(let number)?:
            guard number.isInteger, let value = number.int64 else { return nil }
            issuedAtMillis = value
        default: return nil
        }
        var nonce = ""
        switch members["nonce"] {
        case nil: nonce = ""
        case .string(let value)?: nonce = value
        default: return nil
        }
        var traceparent: String?
        switch members["traceparent"] {
        case nil, .null?: traceparent = nil
        case .string(let value)?: traceparent = value
        default: return nil
        }
        var signature: String?
        switch members["signature"] {
        case nil, .null?: signature = nil
        case .string(let value)?: signature = value
        default: return nil
        }
        let envelope = BusEnvelope(
            sessionID: sessionID, sourceInstanceID: sourceInstanceID, target: target, targetDeviceID: targetDeviceID,
            payload: Array(payload.utf8), issuedAtMillis: issuedAtMillis, nonce: nonce, traceparent: traceparent)
        return WireEnvelope(schemaVersion: schemaVersion, envelope: envelope, signature: signature)
    }

    private static func appendCanonical(_ envelope: BusEnvelope, schemaVersion: UInt8, to buffer: inout [UInt8]) {
        append(#"{"schema_version":"#, to: &buffer)
        append(String(schemaVersion), to: &buffer)
        append(#","session_id":"#, to: &buffer)
        appendJSONString(envelope.sessionID, to: &buffer)
        append(#","source_instance_id":"#, to: &buffer)
        appendJSONString(envelope.sourceInstanceID, to: &buffer)
        append(#","target":"#, to: &buffer)
        appendJSONString(envelope.target.rawValue, to: &buffer)
        append(#","target_device_id":"#, to: &buffer)
        if let targetDeviceID = envelope.targetDeviceID {
            appendJSONString(targetDeviceID, to: &buffer)
        } else {
            append("null", to: &buffer)
        }
        append(#","payload":"#, to: &buffer)
        // The payload is a JSON text, so UTF-8; anything else would become U+FFFD here, as it
        // would in the reference's `String`.
        appendJSONString(String(decoding: envelope.payload, as: UTF8.self), to: &buffer)
        append(#","issued_at_ms":"#, to: &buffer)
        append(String(envelope.issuedAtMillis), to: &buffer)
        append(#","nonce":"#, to: &buffer)
        appendJSONString(envelope.nonce, to: &buffer)
        if let traceparent = envelope.traceparent {
            append(#","traceparent":"#, to: &buffer)
            appendJSONString(traceparent, to: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
    }

    @inline(__always)
    private static func append(_ text: String, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: text.utf8)
    }
}

// The stored session JSON of PROTOCOL §6.1, shared with the reference relay.

import RelayCore
import RelayProtocol

/// Encodes and decodes ``SessionRecord`` as the session JSON of PROTOCOL §6.1.
///
/// Written in the reference's field order (its struct order), devices sorted by id, integers in
/// plain decimal; read leniently as the reference reads it: unknown keys ignored,
/// `join_token_used_at_ms` null or missing, `retired_session_tokens` defaulting to `[]`.
public enum SessionRecordJSON {
    /// The only layout this relay reads and writes.
    public static let schemaVersion = 1

    /// Why a stored record was skipped.
    public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong, naming the field (never its value: records hold tokens).
        public let description: String
    }

    /// The record as session JSON.
    public static func encode(_ record: SessionRecord) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512 + record.devices.count * 256)
        out.append(contentsOf: #"{"schema_version":1,"session_id":"#.utf8)
        appendJSONString(record.sessionID, to: &out)
        out.append(contentsOf: #","join_token":"#.utf8)
        appendJSONString(record.joinToken, to: &out)
        out.append(contentsOf: #","join_token_expires_at_ms":"#.utf8)
        out.append(contentsOf: String(record.joinTokenExpiresAtMillis).utf8)
        out.append(contentsOf: #","join_token_used_at_ms":"#.utf8)
        out.append(contentsOf: (record.joinTokenUsedAtMillis.map { String($0) } ?? "null").utf8)
        out.append(contentsOf: #","desktop_session_token":"#.utf8)
        appendJSONString(record.desktopSessionToken, to: &out)
        out.append(contentsOf: #","relay_web_socket_url":"#.utf8)
        appendJSONString(record.relayWebSocketURL, to: &out)
        out.append(contentsOf: #","idle_timeout_seconds":"#.utf8)
        out.append(contentsOf: String(record.idleTimeoutSeconds).utf8)
        out.append(contentsOf: #","created_at_ms":"#.utf8)
        out.append(contentsOf: String(record.createdAtMillis).utf8)
        out.append(contentsOf: #","last_activity_at_ms":"#.utf8)
        out.append(contentsOf: String(record.lastActivityAtMillis).utf8)
        out.append(contentsOf: #","devices":{"#.utf8)
        // Sorted by UTF-8 bytes so the same record always serializes to the same bytes.
        let deviceIDs = record.devices.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for (position, deviceID) in deviceIDs.enumerated() {
            let device = record.devices[deviceID]!
            if position > 0 { out.append(UInt8(ascii: ",")) }
            appendJSONString(deviceID, to: &out)
            out.append(contentsOf: #":{"current_session_token":"#.utf8)
            appendJSONString(device.currentToken, to: &out)
            out.append(contentsOf: #","retired_session_tokens":["#.utf8)
            for (index, retired) in device.retiredTokens.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"token":"#.utf8)
                appendJSONString(retired.token, to: &out)
                out.append(contentsOf: #","expires_at_ms":"#.utf8)
                out.append(contentsOf: String(retired.expiresAtMillis).utf8)
                out.append(UInt8(ascii: "}"))
            }
            out.append(contentsOf: #"],"name":"#.utf8)
            appendJSONString(device.name, to: &out)
            out.append(contentsOf: #","joined_at_ms":"#.utf8)
            out.append(contentsOf: String(device.joinedAtMillis).utf8)
            out.append(contentsOf: #","last_seen_at_ms":"#.utf8)
            out.append(contentsOf: String(device.lastSeenAtMillis).utf8)
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "}}".utf8)
        return out
    }

    /// The record in `bytes`; throws for malformed JSON, a missing or mistyped field, or a
    /// `schema_version` other than 1.
    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> SessionRecord {
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw DecodingError(description: "malformed JSON: \(error)")
        }
        guard let object = value.objectValue else { throw DecodingError(description: "not a JSON object") }
        let schema = try integer(object, "schema_version", as: Int64.self)
        guard schema == Int64(schemaVersion) else {
            throw DecodingError(description: "schema_version \(schema) is not \(schemaVersion)")
        }
        var usedAt: Int64?
        if let used = object["join_token_used_at_ms"], !used.isNull {
            usedAt = try integer(object, "join_token_used_at_ms", as: Int64.self)
        }
        guard let devicesObject = object["devices"]?.objectValue else {
            throw DecodingError(description: "devices is missing or not an object")
        }
        var devices: [String: DeviceRecord] = [:]
        devices.reserveCapacity(devicesObject.count)
        for (deviceID, deviceValue) in devicesObject {
            guard let device = deviceValue.objectValue else {
                throw DecodingError(description: "a device is not an object")
            }
            var retired: [RetiredToken] = []
            if let retiredValue = device["retired_session_tokens"], !retiredValue.isNull {
                guard let entries = retiredValue.arrayValue else {
                    throw DecodingError(description: "retired_session_tokens is not an array")
                }
                for entry in entries {
                    guard let entry = entry.objectValue else {
                        throw DecodingError(description: "a retired session token is not an object")
                    }
                    retired.append(
                        RetiredToken(
                            token: try string(entry, "token"), expiresAtMillis: try integer(entry, "expires_at_ms", as: Int64.self)))
                }
            }
            devices[deviceID] = DeviceRecord(
                deviceID: deviceID, currentToken: try string(device, "current_session_token"), retiredTokens: retired,
                name: try string(device, "name"), joinedAtMillis: try integer(device, "joined_at_ms", as: Int64.self),
                lastSeenAtMillis: try integer(device, "last_seen_at_ms", as: Int64.self))
        }
        return SessionRecord(
            sessionID: try string(object, "session_id"), joinToken: try string(object, "join_token"),
            joinTokenExpiresAtMillis: try integer(object, "join_token_expires_at_ms", as: Int64.self),
            joinTokenUsedAtMillis: usedAt, desktopSessionToken: try string(object, "desktop_session_token"),
            relayWebSocketURL: try string(object, "relay_web_socket_url"),
            idleTimeoutSeconds: try integer(object, "idle_timeout_seconds", as: UInt64.self),
            createdAtMillis: try integer(object, "created_at_ms", as: Int64.self),
            lastActivityAtMillis: try integer(object, "last_activity_at_ms", as: Int64.self), devices: devices)
    }

    private static func string(_ object: [String: JSONValue], _ key: String) throws(DecodingError) -> String {
        guard let value = object[key]?.stringValue else {
            throw DecodingError(description: "\(key) is missing or not a string")
        }
        return value
    }

    /// An integer field; like serde, a fraction or exponent (`1.0`, `1e3`) is not an integer.
    private static func integer<Integer: FixedWidthInteger>(
        _ object: [String: JSONValue], _ key: String, as type: Integer.Type
    ) throws(DecodingError) -> Integer {
        guard let number = object[key]?.numberValue, number.isInteger else {
            throw DecodingError(description: "\(key) is missing or not an integer")
        }
        let value: Integer? =
            if Integer.isSigned { number.int64.flatMap { Integer(exactly: $0) } } else { number.uint64.flatMap { Integer(exactly: $0) } }
        guard let value else { throw DecodingError(description: "\(key) is out of range") }
        return value
    }
}

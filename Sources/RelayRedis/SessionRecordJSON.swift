// The stored session JSON of PROTOCOL §6.1, shared with the reference relay.

import RelayCore
import RelayProtocol

/// Encodes and decodes ``SessionRecord`` as session JSON, in one of two layouts:
///
/// - **digest** (`schema_version` 2, ours, the default): every token is replaced by the lower-case
///   hex SHA-256 of it, under the same key with `_sha256` appended (`join_token_sha256`,
///   `desktop_session_token_sha256`, `current_session_token_sha256`, a retired entry's
///   `token_sha256`). Reading the store no longer gives anyone a credential. A reference relay
///   skips such a record (it reads only `schema_version` 1).
/// - **plain** (`schema_version` 1, PROTOCOL §6.1): the tokens themselves, for a cluster mixed
///   with reference relays during a migration (`REDIS_TOKEN_STORAGE=plain`).
///
/// Written in the reference's field order (its struct order), devices sorted by id, integers in
/// plain decimal; read leniently as the reference reads it: unknown keys ignored,
/// `join_token_used_at_ms` null or missing, `retired_session_tokens` defaulting to `[]`. Both
/// layouts are always read.
public enum SessionRecordJSON {
    /// How tokens are written.
    public enum Layout: Sendable, Equatable {
        /// `schema_version` 2: token digests only.
        case digest
        /// `schema_version` 1, the reference's: tokens in clear.
        case plain
    }

    /// The reference's layout (tokens in clear).
    public static let plainSchemaVersion = 1
    /// Ours: token digests.
    public static let digestSchemaVersion = 2

    /// Why a stored record was skipped.
    public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong, naming the field (never its value: records hold tokens).
        public let description: String
    }

    /// The record as session JSON in `layout`. A record holding a token known only by its digest
    /// is written as digests whatever `layout` asks: its tokens cannot be written in clear.
    public static func encode(_ record: SessionRecord, layout: Layout = .digest) -> [UInt8] {
        let plain = layout == .plain && record.knowsEveryTokenInClear
        func appendToken(_ key: String, _ token: StoredToken, to out: inout [UInt8]) {
            out.append(contentsOf: "\"\(key)\(plain ? "" : "_sha256")\":".utf8)
            appendJSONString(plain ? token.clear! : token.digest.hex, to: &out)
        }
        var out: [UInt8] = []
        out.reserveCapacity(512 + record.devices.count * 256)
        out.append(contentsOf: #"{"schema_version":"#.utf8)
        out.append(contentsOf: String(plain ? plainSchemaVersion : digestSchemaVersion).utf8)
        out.append(contentsOf: #","session_id":"#.utf8)
        appendJSONString(record.sessionID, to: &out)
        out.append(UInt8(ascii: ","))
        appendToken("join_token", record.joinToken, to: &out)
        out.append(contentsOf: #","join_token_expires_at_ms":"#.utf8)
        out.append(contentsOf: String(record.joinTokenExpiresAtMillis).utf8)
        out.append(contentsOf: #","join_token_used_at_ms":"#.utf8)
        out.append(contentsOf: (record.joinTokenUsedAtMillis.map { String($0) } ?? "null").utf8)
        out.append(UInt8(ascii: ","))
        appendToken("desktop_session_token", record.desktopSessionToken, to: &out)
        out.append(contentsOf: #","relay_web_socket_url":"#.utf8)
        appendJSONString(record.relayWebSocketURL, to: &out)
        out.append(contentsOf: #","idle_timeout_seconds":"#.utf8)
        out.append(contentsOf: String(record.idleTimeoutSeconds).utf8)
        out.append(contentsOf: #","created_at_ms":"#.utf8)
        out.append(contentsOf: String(record.createdAtMillis).utf8)
        out.append(contentsOf: #","last_activity_at_ms":"#.utf8)
        out.append(contentsOf: String(record.lastActivityAtMillis).utf8)
        // Ours, and only in our layout: the reference's records keep exactly its fields.
        if !plain, let traceparent = record.pairingTraceparent {
            out.append(contentsOf: #","pairing_traceparent":"#.utf8)
            appendJSONString(traceparent, to: &out)
        }
        out.append(contentsOf: #","devices":{"#.utf8)
        // Sorted by UTF-8 bytes so the same record always serializes to the same bytes.
        let deviceIDs = record.devices.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for (position, deviceID) in deviceIDs.enumerated() {
            let device = record.devices[deviceID]!
            if position > 0 { out.append(UInt8(ascii: ",")) }
            appendJSONString(deviceID, to: &out)
            out.append(contentsOf: ":{".utf8)
            appendToken("current_session_token", device.currentToken, to: &out)
            out.append(contentsOf: #","retired_session_tokens":["#.utf8)
            for (index, retired) in device.retiredTokens.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "{"))
                appendToken("token", retired.token, to: &out)
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
            // Extension 10, only for a device with a grant: every node enforces what is stored.
            if let grant = device.grant {
                out.append(contentsOf: #","scope":"#.utf8)
                appendJSONString(grant.scope.rawValue, to: &out)
                if let commands = grant.allowedCommands {
                    out.append(contentsOf: #","allowed_commands":"#.utf8)
                    out.append(contentsOf: JSONValue.array(commands.map(JSONValue.string)).serialized.utf8)
                }
                if let expiry = grant.expiresAtMillis {
                    out.append(contentsOf: #","grant_expires_at_ms":"#.utf8)
                    out.append(contentsOf: String(expiry).utf8)
                }
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "}}".utf8)
        return out
    }

    /// The record in `bytes`, in either layout; throws for malformed JSON, a missing or mistyped
    /// field, or a `schema_version` other than 1 or 2. Tokens read in clear are kept in clear only
    /// if `keepingClear` (a node that writes the plain layout); their digests are always computed.
    public static func decode(_ bytes: [UInt8], keepingClear: Bool = false) throws(DecodingError) -> SessionRecord {
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw DecodingError(description: "malformed JSON: \(error)")
        }
        guard let object = value.objectValue else { throw DecodingError(description: "not a JSON object") }
        let schema = try integer(object, "schema_version", as: Int64.self)
        guard schema == Int64(plainSchemaVersion) || schema == Int64(digestSchemaVersion) else {
            throw DecodingError(description: "schema_version \(schema) is neither 1 nor 2")
        }
        let plain = schema == Int64(plainSchemaVersion)
        func token(_ object: [String: JSONValue], _ key: String) throws(DecodingError) -> StoredToken {
            if plain { return StoredToken(try string(object, key), keepingClear: keepingClear) }
            guard let digest = TokenDigest(hex: try string(object, key + "_sha256")) else {
                throw DecodingError(description: "\(key)_sha256 is not 64 hex digits")
            }
            return StoredToken(digest: digest)
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
                            token: try token(entry, "token"), expiresAtMillis: try integer(entry, "expires_at_ms", as: Int64.self)))
                }
            }
            devices[deviceID] = DeviceRecord(
                deviceID: deviceID, currentToken: try token(device, "current_session_token"), retiredTokens: retired,
                name: try string(device, "name"), joinedAtMillis: try integer(device, "joined_at_ms", as: Int64.self),
                lastSeenAtMillis: try integer(device, "last_seen_at_ms", as: Int64.self), grant: try grant(device))
        }
        return SessionRecord(
            sessionID: try string(object, "session_id"), joinToken: try token(object, "join_token"),
            joinTokenExpiresAtMillis: try integer(object, "join_token_expires_at_ms", as: Int64.self),
            joinTokenUsedAtMillis: usedAt, desktopSessionToken: try token(object, "desktop_session_token"),
            relayWebSocketURL: try string(object, "relay_web_socket_url"),
            idleTimeoutSeconds: try integer(object, "idle_timeout_seconds", as: UInt64.self),
            createdAtMillis: try integer(object, "created_at_ms", as: Int64.self),
            lastActivityAtMillis: try integer(object, "last_activity_at_ms", as: Int64.self), devices: devices,
            pairingTraceparent: object["pairing_traceparent"]?.stringValue)
    }

    /// A device's grant (extension 10); nil when the record has none. A grant that cannot be read
    /// fails the record: reading it as "no grant" would give the device full access.
    private static func grant(_ device: [String: JSONValue]) throws(DecodingError) -> DeviceGrant? {
        guard let scopeValue = device["scope"], !scopeValue.isNull else { return nil }
        guard let scope = scopeValue.stringValue.flatMap(DeviceScope.init(rawValue:)) else {
            throw DecodingError(description: "scope is neither control nor view")
        }
        var commands: [String]?
        if let list = device["allowed_commands"], !list.isNull {
            guard let names = list.arrayValue?.compactMap(\.stringValue), names.count == list.arrayValue?.count else {
                throw DecodingError(description: "allowed_commands is not an array of strings")
            }
            commands = names
        }
        var expiry: Int64?
        if let value = device["grant_expires_at_ms"], !value.isNull { expiry = try integer(device, "grant_expires_at_ms", as: Int64.self) }
        return DeviceGrant(scope: scope, allowedCommands: commands, expiresAtMillis: expiry)
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

// The HTTP API's request bodies (PROTOCOL §2.5–§2.10), decoded strictly: unknown fields refused.

/// Strict reader of a request object: rejects unknown keys and treats `null` as absent.
struct StrictObject {
    let fields: [String: JSONValue]

    init(_ value: JSONValue, allowed: Set<String>) throws(BodyShapeError) {
        guard case .object(let fields) = value else {
            throw BodyShapeError("invalid type: expected a JSON object")
        }
        let unknown = fields.keys.filter { !allowed.contains($0) }
        if let first = unknown.min(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            throw BodyShapeError("unknown field `\(first)`")
        }
        self.fields = fields
    }

    func string(_ key: String) throws(BodyShapeError) -> String {
        guard let value = try optionalString(key) else { throw BodyShapeError("missing field `\(key)`") }
        return value
    }

    func optionalString(_ key: String) throws(BodyShapeError) -> String? {
        switch fields[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw BodyShapeError("invalid type for `\(key)`: expected a string")
        }
    }

    func optionalUnsigned(_ key: String, max: UInt64) throws(BodyShapeError) -> UInt64? {
        switch fields[key] {
        case nil, .null?: return nil
        case .number(let n)?:
            guard let v = n.uint64, v <= max else {
                throw BodyShapeError("invalid value for `\(key)`: expected a non-negative integer")
            }
            return v
        default: throw BodyShapeError("invalid type for `\(key)`: expected a non-negative integer")
        }
    }

    func schemaVersion() throws(BodyShapeError) -> UInt32? {
        try optionalUnsigned("schemaVersion", max: UInt64(UInt32.max)).map { UInt32($0) }
    }
}

/// `POST /pair/start` (PROTOCOL §2.5).
public struct PairStartRequest: Sendable, Equatable {
    public var schemaVersion: UInt32?
    public var sessionID: String
    public var joinToken: String
    public var desktopSessionToken: String
    public var joinTokenExpiresAt: String
    public var relayWebSocketURL: String?
    public var idleTimeoutSeconds: UInt64?

    /// Decodes the body strictly (unknown fields rejected).
    public init(json: JSONValue) throws(BodyShapeError) {
        let o = try StrictObject(json, allowed: [
            "schemaVersion", "sessionID", "joinToken", "desktopSessionToken", "joinTokenExpiresAt",
            "relayWebSocketURL", "idleTimeoutSeconds",
        ])
        schemaVersion = try o.schemaVersion()
        sessionID = try o.string("sessionID")
        joinToken = try o.string("joinToken")
        desktopSessionToken = try o.string("desktopSessionToken")
        joinTokenExpiresAt = try o.string("joinTokenExpiresAt")
        relayWebSocketURL = try o.optionalString("relayWebSocketURL")
        idleTimeoutSeconds = try o.optionalUnsigned("idleTimeoutSeconds", max: UInt64.max)
    }
}

/// `POST /pair/join` (PROTOCOL §2.6). Note: no `schemaVersion` field.
public struct PairJoinRequest: Sendable, Equatable {
    public var sessionID: String
    public var joinToken: String
    public var deviceName: String?

    /// Decodes the body strictly (unknown fields, including `schemaVersion`, rejected).
    public init(json: JSONValue) throws(BodyShapeError) {
        let o = try StrictObject(json, allowed: ["sessionID", "joinToken", "deviceName"])
        sessionID = try o.string("sessionID")
        joinToken = try o.string("joinToken")
        deviceName = try o.optionalString("deviceName")
    }
}

/// `POST /pair/refresh` (PROTOCOL §2.7).
public struct PairRefreshRequest: Sendable, Equatable {
    public var schemaVersion: UInt32?
    public var sessionID: String
    public var joinToken: String
    public var desktopSessionToken: String
    public var joinTokenExpiresAt: String

    /// Decodes the body strictly.
    public init(json: JSONValue) throws(BodyShapeError) {
        let o = try StrictObject(json, allowed: [
            "schemaVersion", "sessionID", "joinToken", "desktopSessionToken", "joinTokenExpiresAt",
        ])
        schemaVersion = try o.schemaVersion()
        sessionID = try o.string("sessionID")
        joinToken = try o.string("joinToken")
        desktopSessionToken = try o.string("desktopSessionToken")
        joinTokenExpiresAt = try o.string("joinTokenExpiresAt")
    }
}

/// `POST /pair/stop` and `POST /devices/list` (PROTOCOL §2.8, §2.9): the desktop's credentials.
public struct DesktopCredentialsRequest: Sendable, Equatable {
    public var schemaVersion: UInt32?
    public var sessionID: String
    public var desktopSessionToken: String

    /// Decodes the body strictly.
    public init(json: JSONValue) throws(BodyShapeError) {
        let o = try StrictObject(json, allowed: ["schemaVersion", "sessionID", "desktopSessionToken"])
        schemaVersion = try o.schemaVersion()
        sessionID = try o.string("sessionID")
        desktopSessionToken = try o.string("desktopSessionToken")
    }
}

/// `POST /devices/revoke` (PROTOCOL §2.10).
public struct DeviceRevokeRequest: Sendable, Equatable {
    public var schemaVersion: UInt32?
    public var sessionID: String
    public var desktopSessionToken: String
    public var deviceID: String

    /// Decodes the body strictly.
    public init(json: JSONValue) throws(BodyShapeError) {
        let o = try StrictObject(json, allowed: ["schemaVersion", "sessionID", "desktopSessionToken", "deviceID"])
        schemaVersion = try o.schemaVersion()
        sessionID = try o.string("sessionID")
        desktopSessionToken = try o.string("desktopSessionToken")
        deviceID = try o.string("deviceID")
    }
}

/// `POST /devices/scope` (extension 10): a device's new grant. The grant fields are kept as sent;
/// the relay checks them (400 `invalid_scope`), so a wrong value gets a message naming it.
public struct DeviceScopeRequest: Sendable, Equatable {
    public var schemaVersion: UInt32?
    public var sessionID: String
    public var desktopSessionToken: String
    public var deviceID: String
    public var scope: JSONValue?
    public var allowedCommands: JSONValue?
    public var grantExpiresAt: JSONValue?

    /// Decodes the body strictly: only these keys, identifiers as strings.
    public init(json: JSONValue) throws(BodyShapeError) {
        let o = try StrictObject(
            json, allowed: ["schemaVersion", "sessionID", "desktopSessionToken", "deviceID", "scope", "allowedCommands", "grantExpiresAt"])
        schemaVersion = try o.schemaVersion()
        sessionID = try o.string("sessionID")
        desktopSessionToken = try o.string("desktopSessionToken")
        deviceID = try o.string("deviceID")
        scope = json["scope"]
        allowedCommands = json["allowedCommands"]
        grantExpiresAt = json["grantExpiresAt"]
    }
}

/// The JSON shape is wrong: unknown field, missing required field or wrong type (HTTP 422).
public struct BodyShapeError: Error, Sendable, CustomStringConvertible {
    /// A short human detail, e.g. `unknown field `foo``.
    public let description: String
    /// Creates a shape error with its detail.
    public init(_ description: String) { self.description = description }
}

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

/// An application-level HTTP error: status, code and the contract's message (PROTOCOL §2.2).
public struct APIError: Error, Sendable, Equatable {
    /// HTTP status code.
    public let status: Int
    /// The `error` field.
    public let code: HTTPErrorCode
    /// The `message` field, byte-for-byte.
    public let message: String
    /// Extra string fields (only `pair_request_in_progress` has them: `expiresAt`, `requestID`).
    public let extra: [String: String]

    /// Creates an error body.
    public init(_ status: Int, _ code: HTTPErrorCode, _ message: String, extra: [String: String] = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
    }

    /// The JSON body, keys sorted as the reference emits them.
    public var body: [UInt8] {
        var fields = extra.map { ($0.key, JSONValue.string($0.value)) }
        fields.append(("error", .string(code.rawValue)))
        fields.append(("message", .string(message)))
        return Array(JSONValue.object(Dictionary(uniqueKeysWithValues: fields)).serialized.utf8)
    }
}

extension APIError {
    public static let unsupportedSchemaVersion = APIError(400, .unsupportedSchemaVersion, "Only schemaVersion 2 is supported.")
    public static let originNotAllowed = APIError(403, .originNotAllowed, "Origin is not allowed.")
    public static let pairingRateLimited = APIError(429, .rateLimited, "Too many pairing attempts. Try again in a minute.")
    public static let managementRateLimited = APIError(429, .rateLimited, "Too many relay management requests. Try again in a minute.")
    public static let sessionNotFound = APIError(404, .sessionNotFound, "Remote session not found.")
    public static let invalidDesktopSessionToken = APIError(403, .invalidDesktopSessionToken, "Desktop session token is invalid.")
    public static let expiredJoinToken = APIError(400, .expiredJoinToken, "joinTokenExpiresAt must be in the future.")
    public static let joinTokenExpired = APIError(410, .joinTokenExpired, "Join token has expired.")
    public static let joinTokenAlreadyUsed = APIError(409, .joinTokenAlreadyUsed, "Join token has already been redeemed. Start a new session from desktop.")
    public static let invalidJoinToken = APIError(403, .invalidJoinToken, "Join token is invalid.")
    public static let desktopNotConnected = APIError(409, .desktopNotConnected, "Desktop is not connected to relay. Re-open Remote Control on desktop and retry.")
    public static let desktopDisconnectedDuringApproval = APIError(409, .desktopNotConnected, "Desktop disconnected before pairing could be approved.")
    public static let pairRequestTimedOut = APIError(408, .pairRequestTimedOut, "Desktop pairing approval timed out.")
    public static let pairRequestDenied = APIError(403, .pairRequestDenied, "Desktop denied this pairing request.")
    public static let pairingBackpressure = APIError(503, .pairingBackpressure, "Relay is handling too many pending pairing approvals. Retry shortly.")
    public static let sessionAlreadyActive = APIError(409, .sessionAlreadyActive, "sessionID is already active for another desktopSessionToken. Stop the active session or use a new sessionID.")
    public static let deviceNotFound = APIError(404, .deviceNotFound, "Device is not linked to this session.")
    public static let stateStoreUnavailable = APIError(503, .stateStoreUnavailable, "Relay state store is unavailable. Retry shortly.")

    public static func deviceCapReached(_ cap: Int) -> APIError {
        APIError(409, .deviceCapReached, "This session allows at most \(cap) connected devices.")
    }
}

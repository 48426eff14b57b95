// The HTTP API's error answer (PROTOCOL §2.2), and every one the relay gives.

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

// MARK: Malformed requests, one per endpoint (PROTOCOL §2.5–§2.10)

extension APIError {
    public static let invalidPairStartIdentifiers = APIError(
        400, .invalidPairStart, "sessionID, joinToken, and desktopSessionToken must be high-entropy opaque identifiers.")
    public static let invalidPairStartExpiry = APIError(400, .invalidPairStart, "joinTokenExpiresAt must be a valid RFC3339 timestamp.")
    public static let invalidPairJoinIdentifiers = APIError(400, .invalidPairJoin, "sessionID and joinToken are required.")
    public static let invalidPairRefreshIdentifiers = APIError(
        400, .invalidPairRefresh, "sessionID, joinToken, and desktopSessionToken are required.")
    public static let invalidPairRefreshExpiry = APIError(400, .invalidPairRefresh, "joinTokenExpiresAt must be a valid RFC3339 timestamp.")
    public static let invalidPairStopIdentifiers = APIError(400, .invalidPairStop, "sessionID and desktopSessionToken are required.")
    public static let invalidDevicesListIdentifiers = APIError(400, .invalidDevicesList, "sessionID and desktopSessionToken are required.")
    /// Ours (extension 10): `/devices/scope` without usable identifiers.
    public static let invalidDeviceScopeIdentifiers = APIError(
        400, .invalidScope, "sessionID, desktopSessionToken, and deviceID are required.")
    /// Ours (extension 10): grant fields `/devices/scope` cannot use; `message` says which.
    public static func invalidScope(_ message: String) -> APIError { APIError(400, .invalidScope, message) }
    public static let invalidDeviceRevokeIdentifiers = APIError(
        400, .invalidDeviceRevoke, "sessionID, desktopSessionToken, and deviceID are required.")
}

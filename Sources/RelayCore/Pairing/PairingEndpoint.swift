// The six pairing and management endpoints, and what their opening checks differ in.

import RelayProtocol

/// One of the POST endpoints of PROTOCOL §2, with what its opening checks differ in.
enum PairingEndpoint {
    case pairStart, pairJoin, pairRefresh, pairStop, devicesList, devicesRevoke
    /// Ours (extension 10).
    case devicesScope

    /// `/pair/join` carries no `schemaVersion`; the others refuse any but 2.
    var checksSchemaVersion: Bool { self != .pairJoin }

    /// Management endpoints have their own 429 message; all six share one per-IP budget.
    var isManagement: Bool {
        switch self {
        case .pairStart, .pairJoin: false
        case .pairRefresh, .pairStop, .devicesList, .devicesRevoke, .devicesScope: true
        }
    }

    /// The 400 for a missing or malformed identifier.
    var invalidIdentifiers: APIError {
        switch self {
        case .pairStart: .invalidPairStartIdentifiers
        case .pairJoin: .invalidPairJoinIdentifiers
        case .pairRefresh: .invalidPairRefreshIdentifiers
        case .pairStop: .invalidPairStopIdentifiers
        case .devicesList: .invalidDevicesListIdentifiers
        case .devicesRevoke: .invalidDeviceRevokeIdentifiers
        case .devicesScope: .invalidDeviceScopeIdentifiers
        }
    }

    /// The 400 for a `joinTokenExpiresAt` that is not RFC 3339 (the two endpoints that take one).
    var invalidExpiry: APIError {
        self == .pairStart ? .invalidPairStartExpiry : .invalidPairRefreshExpiry
    }
}

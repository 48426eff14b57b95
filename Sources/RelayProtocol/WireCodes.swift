// The wire strings of the protocol, each in exactly one place.

/// Error codes carried by `relay.error` frames sent to a mobile socket (PROTOCOL §4.7).
/// A `relay.error` never closes the socket.
public enum MobileErrorCode: String, Sendable, CaseIterable {
    case desktopOffline = "desktop_offline"
    case invalidPayload = "invalid_payload"
    case invalidCommand = "invalid_command"
    case unsupportedSchema = "unsupported_schema"
    case invalidSession = "invalid_session"
    case replayedCommand = "replayed_command"
    case commandRateLimited = "command_rate_limited"
    case invalidSnapshotRequest = "invalid_snapshot_request"
    case snapshotRateLimited = "snapshot_rate_limited"
    /// Ours (extension 10): the device's grant does not allow the command.
    case scopeDenied = "scope_denied"
    /// Ours (extension 10), to a desktop: its decision's grant fields cannot be used.
    case invalidScope = "invalid_scope"
    /// Ours (extension 11): a `relay.resume` of the wrong shape.
    case invalidResumeRequest = "invalid_resume_request"
    /// Ours (extension 12): a plaintext command on a relay with `E2E_MODE=required`.
    case e2eRequired = "e2e_required"
}

/// Reasons carried by `{"reason":…,"type":"disconnect"}` frames (PROTOCOL §4.11).
public enum DisconnectReason: String, Sendable, CaseIterable {
    case sessionExpired = "session_expired"
    case relayOverCapacity = "relay_over_capacity"
    case desktopReconnected = "desktop_reconnected"
    case deviceReconnected = "device_reconnected"
    case deviceRevoked = "device_revoked"
    case stoppedByDesktop = "stopped_by_desktop"
    case replacedByNewPairStart = "replaced_by_new_pair_start"
    case slowConsumer = "slow_consumer"
    case heartbeatTimeout = "heartbeat_timeout"
    case socketRateLimited = "socket_rate_limited"
    case messageTooLarge = "message_too_large"
    case serverShutdown = "server_shutdown"
    case idleTimeout = "idle_timeout"
    case retentionExpired = "retention_expired"
    case removedFromPersistence = "removed_from_persistence"
    /// Ours (extension 10): the device's grant reached its `grantExpiresAt`.
    case deviceExpired = "device_expired"

    /// The WebSocket close code sent after the `disconnect` text (DECISIONS 8).
    public var closeCode: UInt16 {
        switch self {
        case .relayOverCapacity: 1013
        case .serverShutdown: 1012
        case .heartbeatTimeout: 1001
        case .desktopReconnected, .deviceReconnected, .stoppedByDesktop, .replacedByNewPairStart,
            .idleTimeout, .retentionExpired, .removedFromPersistence:
            1000
        case .sessionExpired, .deviceRevoked, .slowConsumer, .socketRateLimited, .deviceExpired:
            1008
        case .messageTooLarge: 1009  // RFC 6455 §7.4.1: a message too big to process
        }
    }

    /// The exact `disconnect` frame text, keys sorted as the reference emits them.
    public var frameText: String { #"{"reason":"\#(rawValue)","type":"disconnect"}"# }
}

/// Reasons counted in `wsAuthFailureReasons` and logged as `ws_auth_failure reason=…` (PROTOCOL §4.2).
public enum AuthFailureReason: String, Sendable, CaseIterable, Error {
    case authTimeoutOrMissingPayload = "auth_timeout_or_missing_payload"
    case invalidAuthPayload = "invalid_auth_payload"
    case tokenNotFound = "token_not_found"
    case relayOverCapacity = "relay_over_capacity"
    case desktopSessionMissing = "desktop_session_missing"
    case mobileOriginNotAllowed = "mobile_origin_not_allowed"
    case mobileSessionMissing = "mobile_session_missing"
    case deviceNotRegistered = "device_not_registered"
    case deviceCapReached = "device_cap_reached"
    case deviceRecordMissing = "device_record_missing"
    case tokenRotationPersistFailed = "token_rotation_persist_failed"
    /// Ours: the client IP spent its `MAX_WS_AUTH_FAILURES_PER_MINUTE`; refused before any lookup.
    case authRateLimited = "auth_rate_limited"
    /// Ours (extension 10): the device's grant has expired; its tokens no longer authenticate.
    case deviceExpired = "device_expired"

    /// Failures that say the credential was wrong: they spend the client IP's auth-failure budget.
    public var spendsFailureBudget: Bool {
        switch self {
        case .invalidAuthPayload, .tokenNotFound, .desktopSessionMissing, .mobileSessionMissing, .deviceNotRegistered,
            .deviceRecordMissing:
            true
        case .authTimeoutOrMissingPayload, .relayOverCapacity, .mobileOriginNotAllowed, .deviceCapReached,
            .tokenRotationPersistFailed, .authRateLimited, .deviceExpired:
            false
        }
    }
}

/// Application error codes of the HTTP API, with their contract messages (PROTOCOL §2).
public enum HTTPErrorCode: String, Sendable, CaseIterable {
    case unsupportedSchemaVersion = "unsupported_schema_version"
    case originNotAllowed = "origin_not_allowed"
    case rateLimited = "rate_limited"
    case invalidPairStart = "invalid_pair_start"
    case expiredJoinToken = "expired_join_token"
    case sessionAlreadyActive = "session_already_active"
    case invalidPairJoin = "invalid_pair_join"
    case pairingBackpressure = "pairing_backpressure"
    case sessionNotFound = "session_not_found"
    case joinTokenExpired = "join_token_expired"
    case joinTokenAlreadyUsed = "join_token_already_used"
    case invalidJoinToken = "invalid_join_token"
    case deviceCapReached = "device_cap_reached"
    case desktopNotConnected = "desktop_not_connected"
    case pairRequestInProgress = "pair_request_in_progress"
    case pairRequestTimedOut = "pair_request_timed_out"
    case pairRequestDenied = "pair_request_denied"
    case invalidPairRefresh = "invalid_pair_refresh"
    case invalidDesktopSessionToken = "invalid_desktop_session_token"
    case invalidPairStop = "invalid_pair_stop"
    case invalidDevicesList = "invalid_devices_list"
    case invalidDeviceRevoke = "invalid_device_revoke"
    case deviceNotFound = "device_not_found"
    /// Ours (DECISIONS 6): the state store is unreachable, so pairing is refused rather than lost.
    case stateStoreUnavailable = "state_store_unavailable"
    /// Ours (extension 10): `/devices/scope` was given identifiers or grant fields it cannot use.
    case invalidScope = "invalid_scope"
}

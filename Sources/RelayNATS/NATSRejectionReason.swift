// Why a received envelope was dropped (PROTOCOL §6.5): the reasons the bus counts and logs.

/// Why a received envelope was dropped (PROTOCOL §6.5), the `reason` label of
/// `relay_nats_rejected_total`.
public enum NATSRejectionReason: String, Sendable, CaseIterable {
    /// Not an envelope: invalid JSON, a missing or mistyped field, an unknown target.
    case decode
    /// `schema_version` other than 1.
    case schema
    /// Missing, malformed or wrong signature while a secret is configured.
    case signature
    /// `source_instance_id:nonce` already seen within the window.
    case replay
    /// `issued_at_ms` missing (0) or older than the replay window.
    case stale
    /// `issued_at_ms` beyond now plus the allowed clock skew.
    case future
    /// The nonce is not an opaque token of at least 8 characters.
    case nonce
}

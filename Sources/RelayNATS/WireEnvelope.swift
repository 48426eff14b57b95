// A cross-instance envelope as it travels (PROTOCOL §6.4): the core's fields, schema, signature.

import RelayCore

/// An envelope as it travels: the fields the core sees, plus schema version and signature.
struct WireEnvelope: Sendable, Equatable {
    /// `schema_version`; only 1 is accepted by the receive pipeline.
    var schemaVersion: UInt8
    var envelope: BusEnvelope
    /// `signature` as received (base64url text), nil for `null` or missing.
    var signature: String?
}

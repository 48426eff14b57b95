// What a phone's frame is once it passed the stateless checks: a snapshot request or a command.

/// What a structurally valid mobile frame is.
public enum MobileFrameKind: Sendable, Equatable {
    /// A valid `relay.snapshot_request`; the per-device snapshot budget is still to be applied.
    case snapshotRequest
    /// A command envelope that passed steps 1–12; the caller applies the `seq` guard and the
    /// budgets (steps 13–15), then ``MobileFrameValidator/validateCommandName(_:limits:)``.
    case command(seq: UInt64, name: String)
    /// Ours (extension 11): a valid `relay.resume` asking for the envelopes after `lastSeq`.
    case resume(lastSeq: UInt64)
}

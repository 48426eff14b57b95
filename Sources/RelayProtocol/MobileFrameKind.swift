// What a phone's frame is once it passed the stateless checks: a snapshot request, a command, or
// one of our extensions' messages.

/// What a structurally valid mobile frame is.
public enum MobileFrameKind: Sendable, Equatable {
    /// A valid `relay.snapshot_request`; the per-device snapshot budget is still to be applied.
    case snapshotRequest
    /// A command envelope that passed steps 1–12; the caller applies the `seq` guard and the
    /// budgets (steps 13–15), then ``MobileFrameValidator/validateCommandName(_:limits:)``.
    case command(seq: UInt64, name: String)
    /// Ours (extension 11): a valid `relay.resume` asking for the envelopes after `lastSeq`.
    case resume(lastSeq: UInt64)
    /// Ours (extension 12): a `sealed` envelope, a command the relay cannot read; the caller
    /// applies the `seq` guard and the command budgets.
    case sealed(seq: UInt64)
    /// Ours (extension 12): a `noise` handshake message, budgeted like a snapshot request.
    case handshake(NoisePatternName)
}

extension MobileFrameKind {
    /// The command's name: nil for a sealed command (unreadable) and for what is not a command.
    public var commandName: String? {
        if case .command(_, let name) = self { name } else { nil }
    }
}

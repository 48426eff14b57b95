// Extension 12: whether a relay carries end-to-end encrypted payloads, and whether it insists.

/// `E2E_MODE` (extension 12): what a relay accepts from phones beside the contract's commands.
public enum EndToEndMode: String, Sendable, CaseIterable {
    /// The contract: only plaintext `command` payloads; `noise` and `sealed` are unknown types.
    case off
    /// `noise` and `sealed` payloads accepted beside plaintext commands (the default).
    case optional
    /// Only `noise` and `sealed`: a plaintext `command` payload gets `e2e_required`.
    case required
}

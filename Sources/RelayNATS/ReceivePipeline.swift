// The checks every received envelope goes through, in PROTOCOL §6.5's order.

import RelayCore
import RelayProtocol
import Synchronization

/// Decode → schema → signature (with a secret) → own source → (with a secret) time window, nonce
/// shape and replay. Without a secret only decode, schema and own source are checked, as in the
/// reference's unsigned mode. Safe to call from several threads; no I/O.
final class ReceivePipeline: Sendable {
    let instanceID: String
    let signer: EnvelopeSigner?
    let replayWindowMillis: Int64
    let maxClockSkewMillis: Int64
    /// Sharded by nonce, each shard pruned on its own inserts: no lock every frame shares.
    private let seen = LockShards<SeenNonces>(count: 16) { SeenNonces() }

    init(instanceID: String, signer: EnvelopeSigner?, replayWindowMillis: Int64, maxClockSkewMillis: Int64) {
        self.instanceID = instanceID
        self.signer = signer
        self.replayWindowMillis = replayWindowMillis
        self.maxClockSkewMillis = maxClockSkewMillis
    }

    /// Runs the checks on a message's bytes at wall-clock time `now` (ms since the epoch) and, for
    /// an accepted signed envelope, remembers its nonce.
    func check(_ bytes: [UInt8], now: Int64) -> ReceiveVerdict {
        guard let wire = EnvelopeCodec.decode(bytes) else { return .reject(.decode) }
        guard wire.schemaVersion == EnvelopeCodec.schemaVersion else { return .reject(.schema) }
        let envelope = wire.envelope
        if let signer {
            // Re-derived from the decoded fields, never taken from the received bytes.
            guard let signature = wire.signature,
                signer.verify(signature, canonical: EnvelopeCodec.canonical(envelope, schemaVersion: wire.schemaVersion))
            else { return .reject(.signature) }
        }
        guard envelope.sourceInstanceID != instanceID else { return .own }
        guard signer != nil else { return .accept(envelope) }

        let issued = envelope.issuedAtMillis
        guard issued > 0 else { return .reject(.stale) }
        guard issued <= now &+ maxClockSkewMillis else { return .reject(.future) }
        guard now &- issued <= replayWindowMillis else { return .reject(.stale) }
        guard Identifiers.isOpaqueToken(envelope.nonce, minLength: 8) else { return .reject(.nonce) }
        let key = SeenNonces.Key(source: envelope.sourceInstanceID, nonce: envelope.nonce)
        let expiry = issued &+ replayWindowMillis &+ maxClockSkewMillis
        let fresh = seen.withLock(for: key) { seen in
            seen.prune(now: now)
            return seen.insert(key, expiry: expiry)
        }
        return fresh ? .accept(envelope) : .reject(.replay)
    }

    /// Nonces remembered now (for tests: pruning keeps this bounded).
    var rememberedNonces: Int {
        var count = 0
        seen.forEach { count += $0.count }
        return count
    }
}

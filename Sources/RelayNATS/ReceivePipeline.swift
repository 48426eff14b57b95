// The checks every received envelope goes through, in PROTOCOL §6.5's order.

import RelayCore
import RelayProtocol
import Synchronization

/// What the pipeline decided about one message.
enum ReceiveVerdict: Sendable, Equatable {
    /// Deliver it.
    case accept(BusEnvelope)
    /// This node published it (not a rejection: NATS echoes publications to their publisher).
    case own
    /// Drop it, counted under `reason`.
    case reject(NATSRejectionReason)
}

/// Decode → schema → signature (with a secret) → own source → (with a secret) time window, nonce
/// shape and replay. Without a secret only decode, schema and own source are checked, as in the
/// reference's unsigned mode. Safe to call from several threads; no I/O.
final class ReceivePipeline: Sendable {
    let instanceID: String
    let signer: EnvelopeSigner?
    let replayWindowMillis: Int64
    let maxClockSkewMillis: Int64
    private let seen = Mutex(SeenNonces())

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
        let fresh = seen.withLock { seen in
            seen.prune(now: now)
            return seen.insert(key, expiry: expiry)
        }
        return fresh ? .accept(envelope) : .reject(.replay)
    }

    /// Nonces remembered now (for tests: pruning keeps this bounded).
    var rememberedNonces: Int { seen.withLock { $0.count } }
}

/// The `source_instance_id:nonce` pairs of accepted signed envelopes, each until its expiry.
///
/// Entries are pruned oldest-inserted first. Expiries are not strictly ordered by arrival (they
/// follow the publishers' clocks), so an entry can outlive its expiry by a little while an older
/// one waits ahead of it — never the reverse, so nothing is forgotten early.
struct SeenNonces {
    struct Key: Hashable {
        var source: String
        var nonce: String
    }

    private var expiries: [Key: Int64] = [:]
    private var order: [(key: Key, expiry: Int64)] = []
    private var head = 0

    var count: Int { expiries.count }

    /// Forgets entries whose expiry has passed.
    mutating func prune(now: Int64) {
        while head < order.count, order[head].expiry < now {
            expiries.removeValue(forKey: order[head].key)
            head += 1
        }
        if head == order.count {
            order.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    /// Records `key`; false when it is already there.
    mutating func insert(_ key: Key, expiry: Int64) -> Bool {
        guard expiries[key] == nil else { return false }
        expiries[key] = expiry
        order.append((key, expiry))
        return true
    }
}

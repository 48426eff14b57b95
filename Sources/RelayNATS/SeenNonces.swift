// The replay memory of the receive pipeline: which signed envelopes were seen, until when.

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

// Taking a place under a limit in an atomic count, for the node's caps.

import Synchronization

extension Atomic where Value == Int {
    /// Adds one unless the count has reached `limit`; true if a place was taken. Caps that many
    /// tasks check at once (sockets, pairing waiters) cannot be overshot by a race.
    func incrementIfBelow(_ limit: Int) -> Bool {
        var current = load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }
}

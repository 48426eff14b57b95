// The bus's view of the one monotonic clock, signed so deadlines can be subtracted freely.

import RelayCore

/// ``RelayCore/monotonicNanoseconds()`` as `Int64`: the bus times its retries, backoffs and log
/// intervals with signed arithmetic.
@inline(__always)
func monotonicNanoseconds() -> Int64 {
    Int64(RelayCore.monotonicNanoseconds())
}

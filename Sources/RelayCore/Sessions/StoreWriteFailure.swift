// Why a compare-and-save write through the store did not happen.

/// Why a write through the store did not happen.
enum StoreWriteFailure<Rejection: Error>: Error {
    /// The change itself refused the stored record (a used join token, a revoked device…).
    case rejected(Rejection)
    /// The store could not be read or written, or other nodes kept winning the race.
    case unavailable(any Error)
}

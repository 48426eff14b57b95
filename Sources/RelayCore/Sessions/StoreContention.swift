// The compare-and-save race a write through the store kept losing.

/// Other nodes won the compare-and-save race every time.
struct StoreContention: Error, CustomStringConvertible {
    var description: String { "the stored record kept changing under this write" }
}

// The error this library throws for everything but a child that exited early.

/// A local process could not be started, did not become ready, or did not stop in time; the
/// description says which and, where there is one, ends with the process's last output.
package struct LocalClusterError: Error, CustomStringConvertible {
    /// What went wrong, for a person.
    package let description: String

    /// An error that says `description`.
    package init(_ description: String) { self.description = description }
}

// Polling for a condition a test waits on.

/// Polls `condition` every 10 ms until it holds; false if `timeout` passes first (after one last
/// look). The default bound is for a broken relay and a busy machine: a wait ends when it holds.
package func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

// One reload of every stored session at a time, shared by the callers that asked for it.

/// Runs one reload at a time; a caller is satisfied only by a reload that started after it asked.
actor ReloadGate {
    private var started = 0
    private var finished = 0
    private var running = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var lastError: (any Error)?

    func run(_ body: @Sendable () async throws -> Void) async throws {
        let needed = started + 1
        while finished < needed {
            if running {
                await withCheckedContinuation { waiters.append($0) }
                continue
            }
            running = true
            started += 1
            let number = started
            do {
                try await body()
                lastError = nil
            } catch {
                lastError = error
            }
            finished = number
            running = false
            let woken = waiters
            waiters = []
            for waiter in woken { waiter.resume() }
        }
        if let lastError { throw lastError }
    }
}

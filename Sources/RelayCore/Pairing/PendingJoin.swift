// The one approval a session may have pending, and the phone's wait for it.

import Synchronization

/// The one approval a session may have pending: resolved once, by the desktop's decision, by the
/// timeout, or by the session going away.
final class PendingJoin: Sendable {
    let requestID: String
    let expiresAtMillis: Int64
    private let state = Mutex<(outcome: JoinOutcome?, continuation: CheckedContinuation<JoinOutcome, Never>?)>((nil, nil))

    init(requestID: String, expiresAtMillis: Int64) {
        self.requestID = requestID
        self.expiresAtMillis = expiresAtMillis
    }

    /// Resolves the wait; later resolutions are ignored.
    func resolve(_ outcome: JoinOutcome) {
        let continuation: CheckedContinuation<JoinOutcome, Never>? = state.withLock { s in
            guard s.outcome == nil else { return nil }
            s.outcome = outcome
            defer { s.continuation = nil }
            return s.continuation
        }
        continuation?.resume(returning: outcome)
    }

    /// Waits for the outcome, or `.timedOut` after `timeoutMillis` of `clock`.
    func wait(timeoutMillis: Int64, clock: any RelayClock) async -> JoinOutcome {
        await withDiscardingTaskGroup { group in
            // The timer is a child of this wait. It resolves `.timedOut` when it fires, and also
            // when it is cancelled: after an outcome that is ignored, and if the waiting task
            // itself is cancelled the wait ends instead of outliving its caller.
            group.addTask { [self] in
                try? await clock.sleep(millis: timeoutMillis)
                resolve(.timedOut)
            }
            let outcome = await withCheckedContinuation { continuation in
                let ready: JoinOutcome? = state.withLock { s in
                    if let outcome = s.outcome { return outcome }
                    s.continuation = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
            group.cancelAll()
            return outcome
        }
    }
}

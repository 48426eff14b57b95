// The node's own asynchronous work, run inside the application's service group.

import Synchronization

/// Jobs a node starts from synchronous code (a reload a bus message asks for, a resync after a
/// bus outage, a store write after a socket closed, the restore retry) and its periodic sweeps.
/// They all run inside ``run(clock:sweepIntervalMillis:sweep:)``, which the application runs as a
/// service: nothing is a detached task, and when the service stops every job is cancelled and
/// awaited. A job submitted before `run` starts waits for it; one submitted after it ended is
/// dropped.
final class BackgroundWork: Sendable {
    typealias Job = @Sendable () async -> Void

    private let jobs: AsyncStream<Job>
    private let intake: AsyncStream<Job>.Continuation
    private let running = Atomic(false)

    init() {
        (jobs, intake) = AsyncStream<Job>.makeStream()
    }

    /// Queues `job` to run concurrently with the node's other work.
    func submit(_ job: @escaping Job) {
        intake.yield(job)
    }

    /// Runs submitted jobs and, every `sweepIntervalMillis` of `clock`, `sweep`, until the task is
    /// cancelled; then cancels the jobs still running and returns once they have.
    func run(clock: any RelayClock, sweepIntervalMillis: Int64, sweep: @escaping @Sendable () async -> Void) async {
        // One runner: a second concurrent call returns at once (a stream has one reader).
        guard running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        let jobs = self.jobs
        await withDiscardingTaskGroup { group in
            group.addTask {
                while true {
                    do {
                        try await clock.sleep(millis: sweepIntervalMillis)
                    } catch {
                        return
                    }
                    await sweep()
                }
            }
            // An AsyncStream ends its iteration when the task is cancelled.
            for await job in jobs {
                group.addTask { await job() }
            }
            group.cancelAll()
        }
        intake.finish()
    }
}

// A progress line on stderr during long runs, so an operator sees a run is alive and how it goes.

import Foundation

/// Prints `line()` to stderr every `interval` until stopped. Artifacts go to files and results to
/// stdout, so progress never mixes into what tooling parses.
package final class ProgressReporter: Sendable {
    private let task: Task<Void, Never>

    /// Starts reporting; `enabled: false` (RELAY_LOAD_PROGRESS=0) makes it silent.
    package init(label: String, interval: Duration = .seconds(2), enabled: Bool = true, line: @escaping @Sendable () -> String) {
        let started = ContinuousClock.now
        task = Task {
            guard enabled else { return }
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                let elapsed = Int((ContinuousClock.now - started).seconds)
                FileHandle.standardError.write(Data("[\(label) \(elapsed)s] \(line())\n".utf8))
            }
        }
    }

    /// Stops reporting.
    package func stop() { task.cancel() }

    deinit { task.cancel() }
}

/// A one-off message on stderr.
package func harnessLog(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

// The variables every benchmark mode reads.

/// What every mode reads besides its own variables.
package struct ModeConfiguration: Sendable {
    package var baseURL: String?
    package var origin = "http://localhost:4173"
    package var resultsPath: String?
    package var progress = true

    package init() {}

    /// `RELAY_LOAD_BASE_URL`, `RELAY_LOAD_ORIGIN`, `RELAY_LOAD_RESULTS_PATH` (default
    /// `output/remote-control/relay-<mode>-result.json`), `RELAY_LOAD_PROGRESS`.
    package init(environment: HarnessEnvironment, mode: String) {
        baseURL = environment.baseURL("RELAY_LOAD_BASE_URL")
        origin = environment.string("RELAY_LOAD_ORIGIN") ?? origin
        resultsPath = environment.string("RELAY_LOAD_RESULTS_PATH") ?? "output/remote-control/relay-\(mode)-result.json"
        progress = environment.bool("RELAY_LOAD_PROGRESS", default: true)
    }
}

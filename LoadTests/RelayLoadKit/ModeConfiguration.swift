// The variables every benchmark mode reads.

/// What every mode reads besides its own variables.
public struct ModeConfiguration: Sendable {
    public var baseURL: String?
    public var origin = "http://localhost:4173"
    public var resultsPath: String?
    public var progress = true

    public init() {}

    /// `RELAY_LOAD_BASE_URL`, `RELAY_LOAD_ORIGIN`, `RELAY_LOAD_RESULTS_PATH` (default
    /// `output/remote-control/relay-<mode>-result.json`), `RELAY_LOAD_PROGRESS`.
    public init(environment: HarnessEnvironment, mode: String) {
        baseURL = environment.baseURL("RELAY_LOAD_BASE_URL")
        origin = environment.string("RELAY_LOAD_ORIGIN") ?? origin
        resultsPath = environment.string("RELAY_LOAD_RESULTS_PATH") ?? "output/remote-control/relay-\(mode)-result.json"
        progress = environment.bool("RELAY_LOAD_PROGRESS", default: true)
    }
}

import RelayLocalCluster

/// The built `relay` executable run as a child process with exactly `environment` (plus
/// `LOG_LEVEL=warning` unless it sets one), for runs that never serve: bad configuration, `--help`.
enum RelayProcess {
    static func launch(arguments: [String] = [], environment: [String: String]) throws -> ChildProcess {
        try ChildProcess.launch(
            executable: try LocalRelayNode.defaultExecutable(), arguments: arguments,
            environment: environment.merging(["LOG_LEVEL": "warning"]) { a, _ in a })
    }
}

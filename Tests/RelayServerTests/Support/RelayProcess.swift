import Foundation
import RelayClient
import RelayTestSupport

/// The built `relay` executable run as a child process, as an operator would run it.
enum RelayProcess {
    static var executable: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("relay").path
    }

    /// Starts `relay` with exactly `environment` (plus `LOG_LEVEL=warning` unless it sets one).
    static func launch(arguments: [String] = [], environment: [String: String]) throws -> ChildProcess {
        try ChildProcess.launch(
            executable: executable, arguments: arguments,
            environment: environment.merging(["LOG_LEVEL": "warning"]) { a, _ in a })
    }
}

extension ChildProcess {
    /// Waits until the relay at `baseURL` answers `/healthz` with 200.
    func waitUntilHealthy(baseURL: String) async throws {
        let http = RelayHTTPClient(baseURL: baseURL)
        for _ in 0..<200 {
            if (try? await http.get("/healthz", timeout: .seconds(1)))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("relay at \(baseURL) never became healthy")
    }
}

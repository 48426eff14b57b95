import ArgumentParser
import Logging
import RelayServer
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `relay`: one relay node. Configuration comes from the environment only (see `--help`).
@main
struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Relay between a desktop coding-agent session and its paired phones.",
        discussion: """
            Configured by environment variables; with no REDIS_URL and no NATS_URL it runs alone with \
            in-memory state. A bad value stops the start with a message naming the variable.

            ENVIRONMENT
            \(RelayConfiguration.variables.map { v in
                "  \(v.name)=\(v.defaultValue)\n      \(v.help)"
            }.joined(separator: "\n"))
            """,
        version: BuildInfo.description
    )

    func run() async throws {
        let configuration: RelayConfiguration
        do {
            configuration = try RelayConfiguration.fromEnvironment(ProcessEnvironment.current)
        } catch {
            FileHandleWriter.standardError("relay: configuration error: \(error.description)\n")
            throw ExitCode(2)
        }
        RelayLogging.bootstrap(level: configuration.logLevel, format: configuration.logFormat)
        let logger = Logger(label: "relay")
        let application = RelayApplication(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: application)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch let error as ConfigurationError {
            logger.critical("start_failed: \(error.description)")
            FileHandleWriter.standardError("relay: configuration error: \(error.description)\n")
            throw ExitCode(2)
        }
    }
}

enum ProcessEnvironment {
    static var current: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") {
                result[String(text[..<eq])] = String(text[text.index(after: eq)...])
            }
            pointer += 1
        }
        return result
    }
}

enum FileHandleWriter {
    static func standardError(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}

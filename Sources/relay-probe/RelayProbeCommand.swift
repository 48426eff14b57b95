// `relay-probe`: proves a relay deployment works end to end, once or every N seconds.

import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOPosix
import RelayClient
import ServiceLifecycle

/// The command line of the probe.
@main
struct RelayProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-probe",
        abstract: "Pair a synthetic desktop and phone through a relay and check every step of a session.",
        discussion: """
            Steps, in order: \(Probe.stepNames(endToEnd: false).joined(separator: ", ")); with --e2e a \
            secure step follows phone_connect. The first failing step ends \
            the probe; the session is stopped on the way out either way. Exit status: 0 when every \
            step worked, 1 when one failed (the report names it), 64 for bad arguments.

            With --every the probe runs until SIGTERM or SIGINT, one run every SECONDS, and serves \
            its metrics (relay_probe_success, relay_probe_step_duration_seconds{step}, …) on \
            --metrics-port at /metrics.
            """
    )

    @Argument(help: "The relay's base URL, as apps reach it (https://relay.example).")
    var relayURL: String

    @Option(name: .customLong("ca-file"), help: "Trust only the CA certificates in this PEM file (for a private CA).")
    var caFile: String?

    @Option(name: .customLong("pin-sha256"), help: "Trust only the certificate with this SHA-256 fingerprint (hex, colons allowed).")
    var pin: String?

    @Option(help: "The Origin the synthetic phone sends (default: the relay URL's origin).")
    var origin: String?

    @Option(name: .customLong("phone-relay-url"), help: "Join and connect the phone through this URL instead (another node of a cluster, to probe cross-node delivery).")
    var phoneRelayURL: String?

    @Flag(name: .customLong("e2e"), help: "Pair through an e2e=1 link and check the end-to-end encrypted path: the handshake, the pin, a sealed command and event, a KK handshake after the restart.")
    var endToEnd = false

    @Option(help: "Seconds one step may take.")
    var timeout: Double = 15

    @Option(name: .customLong("pause-ms"), help: "Milliseconds to wait between steps (to watch, or disturb, each step).")
    var pauseMillis: Int = 0

    @Flag(help: "Print each run as one JSON object instead of the text report.")
    var json = false

    @Option(help: "Probe every SECONDS until stopped, serving metrics.")
    var every: Double?

    @Option(name: .customLong("metrics-host"), help: "Address the metrics listen on with --every.")
    var metricsHost: String = "0.0.0.0"

    @Option(name: .customLong("metrics-port"), help: "Port the metrics listen on with --every.")
    var metricsPort: Int = 9464

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be greater than 0.") }
        if let every, every < 1 { throw ValidationError("--every must be at least 1 second.") }
        guard (0...65_535).contains(metricsPort) else { throw ValidationError("--metrics-port must be a port number.") }
        if caFile != nil, pin != nil { throw ValidationError("--ca-file and --pin-sha256 are alternatives; give one.") }
    }

    func run() async throws {
        let tls: RelayTLS
        do {
            tls = try caFile.map { try RelayTLS.certificateAuthorities(pemFile: $0) } ?? pin.map { try RelayTLS.pinnedCertificate(sha256: $0) } ?? .system
        } catch {
            throw ValidationError("\(error)")
        }
        let json = self.json
        let probe = Probe(
            relayURL: relayURL, phoneRelayURL: phoneRelayURL, origin: origin, endToEnd: endToEnd,
            configuration: RelayClientConfiguration(
                tls: tls, reconnect: RelayReconnectPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(2)),
                connectTimeout: .seconds(timeout), authTimeout: .seconds(timeout), requestTimeout: .seconds(timeout),
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton),
            stepTimeout: .seconds(timeout), pause: .milliseconds(pauseMillis),
            progress: { step in
                // Progress on standard error, so the report on standard output stays one document.
                if !json {
                    FileHandle.standardError.write(Data("step \(step.name) \(step.succeeded ? "ok" : "failed") \(RelayProbeFormat.millis(step.milliseconds))\n".utf8))
                }
            })

        guard let every else {
            let result = await probe.run()
            print(json ? result.json : result.text)
            if !result.succeeded { throw ExitCode(1) }
            return
        }
        var logger = Logger(label: "relay-probe")
        logger.logLevel = .notice
        let metrics = ProbeMetrics()
        let router = Router()
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.exposition)))
        }
        router.get("/healthz") { _, _ in "ok\n" }
        let loop = ProbeLoop(probe: probe, interval: .seconds(every), metrics: metrics, json: json)
        let server = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname(metricsHost, port: metricsPort)),
            services: [loop], logger: logger)
        try await server.runService()
    }
}

/// `--every`: a probe per interval until graceful shutdown, each recorded and printed.
struct ProbeLoop: Service {
    let probe: Probe
    let interval: Duration
    let metrics: ProbeMetrics
    let json: Bool

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            let started = ContinuousClock.now
            let result = await probe.run()
            metrics.record(result)
            // One write per run, so a log collector never sees half a report.
            FileHandle.standardOutput.write(Data(((json ? result.json : result.text) + "\n").utf8))
            let next = started + interval
            try? await gracefulShutdownAwareSleep(until: next)
        }
    }

    /// Sleeps until `deadline`, returning early on graceful shutdown.
    private func gracefulShutdownAwareSleep(until deadline: ContinuousClock.Instant) async throws {
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(until: deadline, clock: .continuous)
        }
    }
}

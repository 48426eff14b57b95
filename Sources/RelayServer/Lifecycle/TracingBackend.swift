// The OpenTelemetry tracer the core is given when trace export is configured, and its exporter.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// The tracer handed to the core and the service that batches and exports its spans over
/// OTLP/HTTP (swift-otel). Built only when ``RelayConfiguration/tracing`` is set: otherwise the
/// core holds no tracer and traces nothing.
struct TracingBackend {
    let tracer: any Tracer
    let service: any Service

    static func make(_ settings: TracingSettings, logger: Logger) throws -> TracingBackend {
        forgetEmptyOTelVariables()
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.resourceAttributes["service.version"] = BuildInfo.version
        // Traces only: metrics are scraped from /metricsz, logs go to standard output.
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.endpoint = settings.tracesURL
        configuration.traces.otlpExporter.protocol = settings.wireProtocol == "http/json" ? .httpJSON : .httpProtobuf
        // Only W3C Trace Context: what the core reads and writes.
        configuration.propagators = [.traceContext]
        var diagnostics = logger
        diagnostics[metadataKey: "component"] = "otel"
        configuration.diagnosticLogger = .custom(diagnostics)
        configuration.diagnosticLogLevel = .warning
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        return TracingBackend(tracer: backend.factory, service: backend.service)
    }

    /// swift-otel reads the `OTEL_*` variables again and takes an empty one as a value (an empty
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` would replace the URL with ""). For the relay an empty
    /// variable is an unset one, as everywhere else, so empty ones leave the environment first.
    /// Runs once, at start, before the exporter or any thread of its exists.
    private static func forgetEmptyOTelVariables() {
        var empty: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if text.hasPrefix("OTEL_"), let equals = text.firstIndex(of: "="),
                text[text.index(after: equals)...].allSatisfy({ $0 == " " || $0 == "\t" })
            {
                empty.append(String(text[..<equals]))
            }
            pointer += 1
        }
        for name in empty { unsetenv(name) }
    }
}

// Where and how the relay exports traces (the OpenTelemetry OTLP variables it reads).

import RelayCore

/// OpenTelemetry trace export over OTLP/HTTP, from the standard `OTEL_*` variables. Absent (nil in
/// ``RelayConfiguration/tracing``) unless an OTLP endpoint is named: the relay then traces nothing.
public struct TracingSettings: Sendable, Equatable {
    /// The URL spans are posted to: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` with `v1/traces` appended, as the OTLP specification says.
    public var tracesURL: String
    /// `http/protobuf` (the default) or `http/json`.
    public var wireProtocol: String
    /// `OTEL_SERVICE_NAME`, `relay` by default.
    public var serviceName: String

    /// The settings `env` asks for; nil when no endpoint is set, `OTEL_SDK_DISABLED` is true or
    /// `OTEL_TRACES_EXPORTER` is `none`.
    static func read(_ reader: EnvironmentReader) throws(ConfigurationError) -> TracingSettings? {
        if let disabled = reader.string("OTEL_SDK_DISABLED"), EnvironmentReader.boolean(disabled) == true { return nil }
        if let exporter = reader.string("OTEL_TRACES_EXPORTER")?.lowercased() {
            if exporter == "none" { return nil }
            guard exporter == "otlp" else {
                throw ConfigurationError("OTEL_TRACES_EXPORTER must be otlp or none (got \(exporter)).")
            }
        }
        let url: String
        let variable: String
        if let traces = reader.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            (url, variable) = (traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        } else if let base = reader.string("OTEL_EXPORTER_OTLP_ENDPOINT") {
            (url, variable) = (base.hasSuffix("/") ? base + "v1/traces" : base + "/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT")
        } else {
            return nil
        }
        guard let parsed = ParsedURL(url), parsed.scheme == "http" || parsed.scheme == "https", parsed.host != nil else {
            throw ConfigurationError("\(variable) must be an http or https URL (got \(url)).")
        }
        let wireProtocol = (reader.string("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? reader.string("OTEL_EXPORTER_OTLP_PROTOCOL") ?? "http/protobuf")
            .lowercased()
        guard wireProtocol == "http/protobuf" || wireProtocol == "http/json" else {
            throw ConfigurationError(
                "OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or http/json (got \(wireProtocol)): this relay exports over OTLP/HTTP only.")
        }
        return TracingSettings(tracesURL: url, wireProtocol: wireProtocol, serviceName: reader.string("OTEL_SERVICE_NAME") ?? "relay")
    }
}

// The tracer a node was given, and how its spans' contexts travel as W3C `traceparent` text.

import Tracing

/// The tracer a node was given (OpenTelemetry when `OTEL_EXPORTER_OTLP_ENDPOINT` is set). A node
/// without one holds nil and traces nothing: no span, no context, no allocation.
///
/// Contexts cross process boundaries as W3C `traceparent` text: from an HTTP header or a WebSocket
/// upgrade, in a bus envelope to another node, and in the session record from `/pair/start` to
/// the nodes where the desktop connects and the phone joins.
struct NodeTracer: Sendable {
    let tracer: any Tracer
    /// This node's id, on every span as `relay.node`: which node did what in a trace.
    let nodeID: String

    /// Starts a span, child of `traceparent` when that is a usable context, else a new trace.
    func startSpan(
        _ name: String, kind: SpanKind, parent traceparent: String?, at instant: DefaultTracerClock.Instant = DefaultTracerClock.now
    ) -> any Span {
        var context = InstrumentationContext.topLevel
        if let traceparent, TraceparentCarrier.isPlausible(traceparent) {
            tracer.extract(["traceparent": traceparent], into: &context, using: TraceparentCarrier())
        }
        let span = tracer.startSpan(name, context: context, ofKind: kind, at: instant)
        span.attributes["relay.node"] = nodeID
        return span
    }

    /// The span's context as `traceparent` text, to carry on; nil if the tracer wrote none.
    func traceparent(of span: any Span) -> String? {
        var carrier: [String: String] = [:]
        tracer.inject(span.context, into: &carrier, using: TraceparentCarrier())
        return carrier["traceparent"]
    }
}

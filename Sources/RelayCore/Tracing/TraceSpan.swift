// One span of the pairing flow or socket auth, or nothing when the node traces nothing.

import Tracing

/// A span, or nothing when the node has no tracer: the call sites stay the same either way.
struct TraceSpan: Sendable {
    private let span: (any Span)?
    private let tracer: NodeTracer?

    /// A span with nothing behind it.
    static let none = TraceSpan(span: nil, tracer: nil)

    init(span: (any Span)?, tracer: NodeTracer?) {
        self.span = span
        self.tracer = tracer
    }

    /// Starts a span on `tracer`, child of `parent` (W3C `traceparent`); nothing without a tracer.
    init(_ name: String, kind: SpanKind, parent: String?, tracer: NodeTracer?) {
        self.tracer = tracer
        self.span = tracer?.startSpan(name, kind: kind, parent: parent)
    }

    /// The span's context as `traceparent` text, to carry to another node or keep for a later step.
    var traceparent: String? {
        guard let span, let tracer else { return nil }
        return tracer.traceparent(of: span)
    }

    /// Sets a string attribute. Never a token or a payload: spans leave the node.
    func set(_ key: String, _ value: String) {
        span?.attributes[key] = value
    }

    /// Sets an integer attribute.
    func set(_ key: String, _ value: Int) {
        span?.attributes[key] = value
    }

    /// Ends the span as a refusal: `relay.outcome` is the wire code, the status an error.
    func end(refusedWith code: String, status: Int? = nil) {
        guard let span else { return }
        span.attributes["relay.outcome"] = code
        if let status { span.attributes["http.response.status_code"] = status }
        span.setStatus(SpanStatus(code: .error, message: code))
        span.end()
    }

    /// Ends the span as a success.
    func end(outcome: String = "ok", status: Int? = nil) {
        guard let span else { return }
        span.attributes["relay.outcome"] = outcome
        if let status { span.attributes["http.response.status_code"] = status }
        span.end()
    }
}

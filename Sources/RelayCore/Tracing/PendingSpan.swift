// A span whose parent is known only part-way through the work it measures.

import Synchronization
import Tracing

/// A span whose parent is known only part-way through the work it times: a `/pair/join` belongs
/// to the trace its session was paired in, known once the session is read. It starts, backdated
/// to when the work began, when ``start(parent:)`` names the parent, or at its end with none.
final class PendingSpan: Sendable {
    private let name: String
    private let kind: SpanKind
    private let tracer: NodeTracer?
    private let began: DefaultTracerClock.Instant
    private let started = Mutex<TraceSpan?>(nil)

    init(_ name: String, kind: SpanKind, tracer: NodeTracer?) {
        self.name = name
        self.kind = kind
        self.tracer = tracer
        self.began = tracer == nil ? DefaultTracerClock.Instant(nanosecondsSinceEpoch: 0) : DefaultTracerClock.now
    }

    /// Starts the span under `parent` (W3C `traceparent`); later calls return the same span.
    @discardableResult
    func start(parent: String?) -> TraceSpan {
        guard let tracer else { return .none }
        return started.withLock { span in
            if let span { return span }
            let new = TraceSpan(span: tracer.startSpan(name, kind: kind, parent: parent, at: began), tracer: tracer)
            span = new
            return new
        }
    }

    /// The span, started without a parent if nothing named one.
    var span: TraceSpan { start(parent: nil) }
}

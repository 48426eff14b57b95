// The target of one libnats connection's callbacks, installed on its options.

import CNats
import Logging

/// The target of one connection's callbacks, on libnats's callback thread.
///
/// libnats holds one retain of this object (taken when the callbacks are installed) and gives it
/// back in the closed callback, which libnats invokes last, also for a connection that never
/// connected.
final class ConnectionCallbacks: Sendable {
    let events: ConnectionEvents
    /// Which of the bus's successive connections this is.
    let generation: Int
    /// Tells the bus thread that libnats closed this connection.
    let closed: @Sendable (_ generation: Int) -> Void

    init(events: ConnectionEvents, generation: Int, closed: @escaping @Sendable (_ generation: Int) -> Void) {
        self.events = events
        self.generation = generation
        self.closed = closed
    }

    /// Installs the connection callbacks on `options`, retaining `self` for libnats.
    func install(on options: OpaquePointer) throws(NATSBusError) {
        let closure = Unmanaged.passRetained(self).toOpaque()
        do {
            try check(natsOptions_SetRetryOnFailedConnect(options, true, { _, closure in
                let events = ConnectionCallbacks.from(closure).events
                if events.report(true) { events.logger.info("nats_connected") }
            }, closure), "set retry on failed connect")
            try check(natsOptions_SetDisconnectedCB(options, { _, closure in
                let events = ConnectionCallbacks.from(closure).events
                if events.report(false) { events.limiter.log(events.logger, .warning, kind: "disconnected", "nats_disconnected") }
            }, closure), "set disconnected callback")
            try check(natsOptions_SetReconnectedCB(options, { _, closure in
                let events = ConnectionCallbacks.from(closure).events
                events.metrics.reconnected()
                if events.report(true) { events.limiter.log(events.logger, .info, kind: "reconnected", "nats_reconnected") }
            }, closure), "set reconnected callback")
            try check(natsOptions_SetErrorHandler(options, { _, _, status, closure in
                let events = ConnectionCallbacks.from(closure).events
                // Slow consumer: libnats dropped messages of a subscription whose queue was full.
                events.limiter.log(
                    events.logger, .warning, kind: "async_error.\(status.rawValue)", "nats_async_error",
                    metadata: ["status": "\(statusText(status))"])
            }, closure), "set error handler")
            try check(natsOptions_SetClosedCB(options, { _, closure in
                // The last callback libnats makes for this connection: give back its retain.
                let callbacks = Unmanaged<ConnectionCallbacks>.fromOpaque(closure!).takeRetainedValue()
                callbacks.events.report(false)
                callbacks.closed(callbacks.generation)
            }, closure), "set closed callback")
        } catch {
            Unmanaged<ConnectionCallbacks>.fromOpaque(closure).release()
            throw error
        }
    }

    private static func from(_ closure: UnsafeMutableRawPointer?) -> ConnectionCallbacks {
        Unmanaged<ConnectionCallbacks>.fromOpaque(closure!).takeUnretainedValue()
    }
}

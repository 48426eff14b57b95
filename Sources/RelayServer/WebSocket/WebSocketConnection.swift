// One WebSocket as the core sees it: a bounded outbound queue with a slow-consumer verdict.

import NIOCore
import NIOWebSocket
import RelayCore
import RelayProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One WebSocket as the core sees it: a bounded outbound queue drained by the socket's event loop.
///
/// `send` never waits. A frame counts against the capacity from the moment it is queued until the
/// kernel has taken it, so a peer that stops reading fills the queue and is reported `.full`; a
/// queue that makes no write progress for the stall timeout is reported `.full` too.
final class WebSocketConnection: RelayConnection {
    let connectionID = Identifiers.shortID()
    let channel: any Channel
    private let capacity: Int
    private let stallTimeoutNanos: UInt64

    private struct Outbound {
        var queue: [WebSocketFrame] = []
        var drainScheduled = false
        /// Frames handed to the channel whose write has not completed yet.
        var inFlight = 0
        var closed = false
        /// When the queue last went from empty to non-empty or a write completed.
        var lastProgressNanos: UInt64 = 0
    }
    private let outbound = Mutex(Outbound())

    /// `drain` as a closure made once: scheduling it per frame then allocates nothing. It holds the
    /// connection weakly (the connection holds it), so a drain still queued on the loop after the
    /// connection is gone does nothing.
    private let drainTask: @Sendable () -> Void

    init(channel: any Channel, capacity: Int, stallTimeoutMillis: Int64) {
        self.channel = channel
        self.capacity = capacity
        self.stallTimeoutNanos = UInt64(stallTimeoutMillis) * 1_000_000
        let box = WeakConnection()
        self.drainTask = { box.connection?.drain() }
        box.connection = self
    }

    func send(_ text: [UInt8]) -> SendResult {
        let frame = WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: text))
        return enqueue(frame)
    }

    /// Frames the queue takes before it is full (0 once closed).
    var outboundSpace: Int {
        outbound.withLock { o in o.closed ? 0 : max(capacity - o.queue.count - o.inFlight, 0) }
    }

    /// Queues a control frame (Ping, Pong) under the same capacity.
    func sendControl(_ opcode: WebSocketOpcode, data: ByteBuffer = ByteBuffer()) -> SendResult {
        enqueue(WebSocketFrame(fin: true, opcode: opcode, data: data))
    }

    private func enqueue(_ frame: WebSocketFrame) -> SendResult {
        let now = monotonicNanoseconds()
        enum Action { case result(SendResult), schedule }
        let action: Action = outbound.withLock { o in
            if o.closed { return .result(.closed) }
            let pending = o.queue.count + o.inFlight
            if pending == 0 { o.lastProgressNanos = now }
            if pending >= capacity { return .result(.full) }
            if o.inFlight > 0, now &- o.lastProgressNanos > stallTimeoutNanos { return .result(.full) }
            o.queue.append(frame)
            if o.drainScheduled { return .result(.enqueued) }
            o.drainScheduled = true
            return .schedule
        }
        switch action {
        case .result(let result):
            return result
        case .schedule:
            // Always a separate event-loop turn, even on the socket's own loop: a write can fail
            // and close the channel synchronously, and its cleanup calls back into the core,
            // which may be holding the session's lock right now.
            channel.eventLoop.execute(drainTask)
            return .enqueued
        }
    }

    /// Writes everything queued with one flush; the batch's last write promise settles the count.
    private func drain() {
        let batch: [WebSocketFrame] = outbound.withLock { o in
            let batch = o.queue
            o.queue.removeAll(keepingCapacity: true)
            o.drainScheduled = false
            o.inFlight += batch.count
            return batch
        }
        guard !batch.isEmpty else { return }
        for frame in batch.dropLast() { channel.write(frame, promise: nil) }
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(batch[batch.count - 1], promise: promise)
        let count = batch.count
        promise.futureResult.whenComplete { _ in
            let now = monotonicNanoseconds()
            self.outbound.withLock { o in
                o.inFlight -= count
                o.lastProgressNanos = now
            }
        }
    }

    /// Whether writes have made no progress for longer than the stall timeout.
    func isStalled() -> Bool {
        let now = monotonicNanoseconds()
        return outbound.withLock { o in
            (o.inFlight + o.queue.count) > 0 && now &- o.lastProgressNanos > stallTimeoutNanos
        }
    }

    var isClosed: Bool { outbound.withLock { $0.closed } }

    func terminate(_ reason: DisconnectReason?) {
        close(text: reason.map { Array($0.frameText.utf8) }, code: reason?.closeCode ?? 1008, closeReason: reason?.rawValue ?? "")
    }

    /// Ends the socket: queued frames, then `text` (if any), then a close frame, then TCP close.
    /// Safe from any thread; the work happens on the socket's event loop.
    func close(text: [UInt8]?, code: UInt16, closeReason: String) {
        let remaining: [WebSocketFrame]? = outbound.withLock { o in
            guard !o.closed else { return nil }
            o.closed = true
            let remaining = o.queue
            o.queue.removeAll()
            return remaining
        }
        guard let remaining else { return }
        let channel = self.channel
        channel.eventLoop.execute {
            guard channel.isActive else { return }
            for frame in remaining { channel.write(frame, promise: nil) }
            if let text { channel.write(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: text)), promise: nil) }
            var payload = ByteBuffer()
            payload.writeInteger(code)
            payload.writeString(closeReason)
            let closeWritten = channel.eventLoop.makePromise(of: Void.self)
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload), promise: closeWritten)
            // FIN after the close frame lets the peer read everything; a peer that never reads
            // (a slow consumer) is cut off by the deadline.
            closeWritten.futureResult.whenSuccess { channel.close(mode: .output, promise: nil) }
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
    }

    /// Marks the queue closed once the channel is gone.
    func markClosed() { outbound.withLock { $0.closed = true } }
}

/// A weak reference to a connection, set once in its initializer before anything can read it.
private final class WeakConnection: @unchecked Sendable {
    weak var connection: WebSocketConnection?
}

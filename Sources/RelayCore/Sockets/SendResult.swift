// What became of a frame handed to a socket's outbound queue.

/// Outcome of a non-blocking enqueue on a socket (``RelayConnection/send(_:)``).
public enum SendResult: Sendable {
    /// The frame is queued behind the socket's earlier frames.
    case enqueued
    /// The socket's bounded outbound queue is full, or its writes have stalled: the frame was not
    /// queued, and the caller decides whether the socket is a slow consumer.
    case full
    /// The socket is closing or closed: the frame was dropped.
    case closed
}

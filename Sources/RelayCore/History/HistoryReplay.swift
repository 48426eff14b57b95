// Answers relay.resume: replays what a phone missed, then hands it back to live traffic.

import Logging
import RelayProtocol
import Synchronization

/// Extension 11's replay for one phone socket. The socket's live desktop frames are held from the
/// moment its `relay.resume` is accepted (``SessionState/liveRecipients(seq:frame:)``); the
/// history (this node's memory, or the shared store) is read, the envelopes after `lastSeq` that
/// the socket has not had live are sent, paced by the socket's queue, then `relay.resumed`, then
/// the held frames, the last of them in the same lock that ends the hold, so no frame is lost,
/// repeated or reordered at the switch.
final class HistoryReplay: NodePart, Sendable {
    let context: NodeContext

    init(context: NodeContext) {
        self.context = context
    }

    /// How long a replay may wait for a phone that does not read before it is a slow consumer.
    static let stallLimit: Duration = .seconds(10)

    func run(session: Session, connection: any RelayConnection, lastSeq: UInt64, before: UInt64?) async {
        let limits = configuration.history
        var reached = lastSeq
        var replayed = 0
        var startOK = true
        var complete = false
        for attempt in 0..<5 {
            var history: [HistoryEntry] = []
            var readFailed = false
            if context.store.keepsHistory {
                do {
                    history = try await context.store.history(sessionID: session.id)
                } catch {
                    logger.warning("history_read_failed", metadata: ["session": "\(Identifiers.redacted(session.id))", "error": "\(error)"])
                    readFailed = true
                }
            } else {
                history = session.state.withLock { $0.history.all }
            }
            let plan = ReplayPlan(history: history, lastSeq: reached, before: before, limits: limits, now: context.now)
            if attempt == 0 { startOK = plan.startsRight }
            guard await send(plan.frames.map(\.frame), to: connection) else { return }
            replayed += plan.frames.count
            reached = plan.frames.last?.seq ?? reached
            if readFailed || !startOK { break }
            // What the phone already holds, or will get next, must join up with the replay. The
            // desktop's node writes the shared history after it publishes, so the newest
            // envelopes can be missing from a read: read again, a little later.
            let held = session.state.withLock { s in
                s.mobiles[connection.connectionID]?.held?.first { entry in entry.seq.map { $0 > reached } ?? false }?.seq
            }
            if let target = before ?? held {
                complete = reached &+ 1 >= target
            } else {
                complete = plan.newest.map { $0 == reached } ?? false
                // Nothing live to join up with: an envelope published just before this node
                // subscribed may still be on its way to Redis. One more read once a live envelope
                // arrives to join up with, or after 30 ms.
                if complete && context.store.keepsHistory && attempt == 0 {
                    for _ in 0..<15 {
                        try? await Task.sleep(for: .milliseconds(2))
                        if session.state.withLock({ $0.mobiles[connection.connectionID]?.held?.isEmpty == false }) { break }
                    }
                    continue
                }
            }
            if complete || !context.store.keepsHistory { break }
            try? await Task.sleep(for: .milliseconds(20 * (attempt + 1)))
        }
        context.stats.replayed(frames: replayed, complete: complete)
        let resumed = ServerMessage.resumed(sessionID: session.id, fromSeq: lastSeq &+ 1, toSeq: reached, complete: complete)
        await finish(session: session, connection: connection, resumed: resumed, replayedFrom: lastSeq, to: reached)
    }

    /// Sends `frames` as the socket's queue makes room; false if the socket closed or stalled.
    private func send(_ frames: [[UInt8]], to connection: any RelayConnection) async -> Bool {
        var index = 0
        var stalledSince: ContinuousClock.Instant?
        while index < frames.count {
            var progressed = false
            sending: while index < frames.count, connection.outboundSpace > 0 {
                switch connection.send(frames[index]) {
                case .enqueued:
                    index += 1
                    progressed = true
                case .full:
                    break sending
                case .closed:
                    return false
                }
            }
            if index == frames.count { break }
            if progressed { stalledSince = nil }
            let since = stalledSince ?? ContinuousClock.now
            stalledSince = since
            if ContinuousClock.now - since > Self.stallLimit {
                stalled(connection)
                return false
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return true
    }

    /// `relay.resumed`, then the held frames (those the replay already sent dropped), then the
    /// end of the hold, the last step in the session's lock so live fan-out resumes right after.
    private func finish(session: Session, connection: any RelayConnection, resumed: [UInt8], replayedFrom lastSeq: UInt64, to reached: UInt64) async {
        var resumedSent = false
        var stalledSince: ContinuousClock.Instant?
        while true {
            let space = connection.outboundSpace
            let state: Bool? = session.state.withLock { s in
                guard var socket = s.mobiles[connection.connectionID], socket.connection === connection, var held = socket.held else {
                    return nil
                }
                var budget = space
                if !resumedSent {
                    guard budget > 0 else { return false }
                    _ = connection.send(resumed)
                    resumedSent = true
                    budget -= 1
                }
                var taken = 0
                while taken < held.count {
                    let item = held[taken]
                    if let seq = item.seq, seq > lastSeq, seq <= reached {
                        taken += 1  // the replay sent it
                        continue
                    }
                    guard budget > 0 else { break }
                    _ = connection.send(item.frame)
                    budget -= 1
                    taken += 1
                }
                held.removeFirst(taken)
                if held.isEmpty {
                    socket.held = nil
                    s.replaying -= 1
                } else {
                    socket.held = held
                }
                s.mobiles[connection.connectionID] = socket
                return held.isEmpty
            }
            guard state == false else { return }
            let since = stalledSince ?? ContinuousClock.now
            stalledSince = since
            if ContinuousClock.now - since > Self.stallLimit {
                stalled(connection)
                return
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    private func stalled(_ connection: any RelayConnection) {
        context.stats.sendFailure(slowConsumer: true)
        context.stats.disconnect(.slowConsumer)
        logger.warning("slow_consumer_disconnect during resume", metadata: ["connection": "\(connection.connectionID)"])
        connection.terminate(.slowConsumer)
    }
}

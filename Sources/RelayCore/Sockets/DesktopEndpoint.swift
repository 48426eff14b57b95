// An authenticated desktop socket: its frames go, byte-exact, to every phone of the session.

import RelayProtocol
import Synchronization

/// An authenticated desktop socket. Its frames go, byte-exact, to every phone of the session.
final class DesktopEndpoint: SocketEndpoint {
    let admission: SocketAdmission
    let session: Session
    let connection: any RelayConnection

    init(admission: SocketAdmission, session: Session, connection: any RelayConnection) {
        self.admission = admission
        self.session = session
        self.connection = connection
    }

    func receive(text: [UInt8]) {
        let now = admission.context.now
        let scan = DesktopFrameScan(text)
        let context = admission.context
        let limits = context.configuration.history
        let sharedHistory = context.store.keepsHistory
        // An envelope of this session is recorded (extension 11) in the same lock as its fan-out,
        // so a resume sees each envelope either in the history or held for its socket.
        let recordable = limits.isEnabled && scan.seq != nil && scan.pairDecision == nil && (scan.sessionID.map { $0 == session.id } ?? true)
        let outcome: (mobiles: [any RelayConnection], entry: HistoryEntry?)? = session.state.withLock { s in
            guard !s.closed, s.desktop === connection else { return nil }
            s.touch(now)
            guard recordable, let seq = scan.seq else { return (s.mobileConnections, nil) }
            var entry: HistoryEntry?
            if sharedHistory {
                let previous = s.lastRecordedSeq.flatMap { $0 < seq ? $0 : nil }
                entry = HistoryEntry(seq: seq, previousSeq: previous, recordedAtMillis: now, frame: text)
                s.lastRecordedSeq = seq
            } else {
                let change = s.history.record(seq: seq, frame: text, now: now, limits: limits)
                context.stats.historyChanged(frames: change.frames, bytes: change.bytes)
            }
            return (s.liveRecipients(seq: seq, frame: text), entry)
        }
        guard let outcome else {
            connection.terminate(nil)
            return
        }
        if let sid = scan.sessionID, sid != session.id { return }
        if let decision = scan.pairDecision {
            admission.pairing.handlePairDecision(decision, frame: text, session: session, from: connection)
            return
        }
        if recordable { context.stats.historyRecorded() }
        if let entry = outcome.entry {
            // Queued on Redis's thread without waiting: a slow or absent Redis costs the desktop
            // nothing; a lost write leaves a hole a resume reports as incomplete.
            let stats = context.stats
            context.store.appendHistory(sessionID: session.id, entry: entry, limits: limits) { written in
                if !written { stats.historyWriteFailed() }
            }
        }
        for mobile in outcome.mobiles { admission.router.deliver(text, to: mobile) }
        admission.router.publish(.mobile, sessionID: session.id, payload: text)
        admission.context.stats.forwarded(fromMobile: false)
    }

    func receivedControlFrame() {
        let now = admission.context.now
        session.state.withLock { $0.touch(now) }
    }

    func closed() {
        admission.releaseAdmission()
        let now = admission.context.now
        let cleared: (pending: PendingJoin?, mobiles: [any RelayConnection])? = session.state.withLock { s in
            // DECISIONS 2: only clear the slot if it still belongs to this socket.
            guard s.desktop === connection else { return nil }
            s.desktop = nil
            s.touch(now)
            let pending = s.pendingJoin
            s.pendingJoin = nil
            return (pending, s.mobileConnections)
        }
        guard let cleared else { return }
        cleared.pending?.resolve(.desktopGone)
        let status = ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: false)
        for mobile in cleared.mobiles { admission.router.deliver(status, to: mobile) }
        admission.router.publish(.mobile, sessionID: session.id, payload: status)
        admission.router.updateSubscription(session)
        let directory = admission.directory, presence = admission.presence, session = self.session
        let holderID = connection.connectionID
        admission.context.work.submit {
            await presence.release(.desktop, of: session.id, holderID: holderID)
            await directory.touchStored(session)
        }
    }
}

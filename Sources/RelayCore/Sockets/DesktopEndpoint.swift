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
        let mobiles: [any RelayConnection]? = session.state.withLock { s in
            guard !s.closed, s.desktop === connection else { return nil }
            s.touch(now)
            return s.mobileConnections
        }
        guard let mobiles else {
            connection.terminate(nil)
            return
        }
        if let sid = scan.sessionID, sid != session.id { return }
        if let decision = scan.pairDecision {
            admission.pairing.handlePairDecision(decision, frame: text, session: session, from: connection)
            return
        }
        for mobile in mobiles { admission.router.deliver(text, to: mobile) }
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

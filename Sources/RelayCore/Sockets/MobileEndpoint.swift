// An authenticated phone socket: its frames are validated, budgeted, stamped and sent to the desktop.

import RelayProtocol
import Synchronization

/// An authenticated mobile socket. Its frames are validated, budgeted, stamped and sent to the desktop.
final class MobileEndpoint: SocketEndpoint {
    let admission: SocketAdmission
    let session: Session
    let deviceID: String
    let connection: any RelayConnection

    init(admission: SocketAdmission, session: Session, deviceID: String, connection: any RelayConnection) {
        self.admission = admission
        self.session = session
        self.deviceID = deviceID
        self.connection = connection
    }

    private enum Verdict {
        case terminate
        case expired
        case drop
        case denied(MobileError, view: Bool)
        /// Extension 11: replay from the history; `before` is the first envelope already had live.
        case resume(lastSeq: UInt64, before: UInt64?)
        /// Extension 11 with history off: nothing to replay, the phone asks for a snapshot.
        case resumeOff(lastSeq: UInt64)
        case reject(MobileError)
        case forward(desktop: (any RelayConnection)?, publish: Bool, kind: MobileFrameKind)
    }

    func receive(text: [UInt8]) {
        let now = admission.context.now
        let sessionID = session.id
        let frame = MobileFrameInspection(text, sessionID: sessionID, limits: admission.validationLimits)
        let config = admission.context.configuration
        let connectionID = connection.connectionID
        let deviceID = self.deviceID

        let verdict: Verdict = session.state.withLock { s in
            guard !s.closed, let socket = s.mobiles[connectionID], socket.connection === connection else { return .terminate }
            s.touch(now)
            // Extension 10: the device's grant, if the desktop set one.
            let grant = s.record.devices[deviceID]?.grant
            if let grant, grant.hasExpired(at: now) { return .expired }
            if frame.hasForeignSessionID { return .drop }
            if frame.requiresDesktop && !s.desktopConnected {
                return .reject(MobileFrameValidator.desktopOfflineError)
            }
            let kind: MobileFrameKind
            switch frame.kind {
            case .failure(let error):
                return .reject(error)
            case .success(let valid):
                kind = valid
            }
            switch kind {
            case .resume(let lastSeq):
                // Budgeted like snapshot requests; allowed while the desktop is away and for a
                // `view` device.
                var bucket = s.snapshotBuckets[deviceID] ?? RateWindow(startingAt: now)
                let allowed = bucket.consume(limit: config.maxSnapshotRequestsPerMinute, now: now)
                s.snapshotBuckets[deviceID] = bucket
                guard allowed else { return .reject(MobileFrameValidator.snapshotRateLimitedError) }
                guard config.history.isEnabled else { return .resumeOff(lastSeq: lastSeq) }
                guard s.mobiles[connectionID]?.held == nil else {
                    return .reject(MobileError(.invalidResumeRequest, "A resume is already in progress on this connection."))
                }
                s.mobiles[connectionID]?.held = []
                s.replaying += 1
                return .resume(lastSeq: lastSeq, before: s.mobiles[connectionID]?.firstLiveSeq)
            case .snapshotRequest, .handshake:
                // Extension 12: a handshake is budgeted like a snapshot request, for every device.
                var bucket = s.snapshotBuckets[deviceID] ?? RateWindow(startingAt: now)
                let allowed = bucket.consume(limit: config.maxSnapshotRequestsPerMinute, now: now)
                s.snapshotBuckets[deviceID] = bucket
                guard allowed else {
                    return .reject(MobileFrameValidator.snapshotRateLimitedError)
                }
            case .command(let seq, _), .sealed(let seq):
                // After the envelope's shape, before the replay guard and the budgets: a denied
                // command consumes nothing. A sealed command's name is unreadable here: only a
                // `view` grant refuses it, and the desktop enforces `allowedCommands` (extension 12).
                if let grant, let denial = grant.denial(ofCommand: kind.commandName) { return .denied(denial, view: grant.scope == .view) }
                guard seq > socket.lastSeq else {
                    return .reject(MobileFrameValidator.replayedCommandError)
                }
                s.mobiles[connectionID]?.lastSeq = seq
                var deviceBucket = s.deviceCommandBuckets[deviceID] ?? RateWindow(startingAt: now)
                let deviceAllowed = deviceBucket.consume(limit: config.maxRemoteCommandsPerMinute, now: now)
                s.deviceCommandBuckets[deviceID] = deviceBucket
                guard deviceAllowed else {
                    return .reject(MobileFrameValidator.deviceCommandRateLimitedError)
                }
                var sessionBucket = s.sessionCommandBucket ?? RateWindow(startingAt: now)
                let sessionAllowed = sessionBucket.consume(limit: config.maxRemoteSessionCommandsPerMinute, now: now)
                s.sessionCommandBucket = sessionBucket
                guard sessionAllowed else {
                    return .reject(MobileFrameValidator.sessionCommandRateLimitedError)
                }
                if let nameError = frame.commandNameError { return .reject(nameError) }
            }
            // A session has one desktop: when it is here and no node has said it holds a newer one,
            // no other node needs the frame, so it is neither signed nor published.
            return .forward(desktop: s.desktop, publish: s.desktop == nil || s.remoteDesktopNode != nil, kind: kind)
        }

        switch verdict {
        case .terminate:
            connection.terminate(nil)
        case .expired:
            admission.context.stats.disconnect(.deviceExpired)
            connection.terminate(.deviceExpired)
        case .drop:
            return
        case .resume(let lastSeq, let before):
            let replay = admission.replay, session = self.session, connection = self.connection
            admission.context.work.submit { await replay.run(session: session, connection: connection, lastSeq: lastSeq, before: before) }
        case .resumeOff(let lastSeq):
            admission.context.stats.replayed(frames: 0, complete: false)
            _ = connection.send(ServerMessage.resumed(sessionID: session.id, fromSeq: lastSeq &+ 1, toSeq: lastSeq, complete: false))
        case .denied(let error, let view):
            admission.context.stats.mobileError(error.code)
            admission.context.stats.scopeDenied(view: view)
            if frame.isEndToEnd { admission.context.stats.endToEndRefused(error.code) }
            _ = connection.send(ServerMessage.error(error))
        case .reject(let error):
            admission.context.stats.mobileError(error.code)
            if frame.isEndToEnd || error.code == .e2eRequired { admission.context.stats.endToEndRefused(error.code) }
            // A relay.error that does not fit is dropped: no counter, no disconnect (§4.10).
            _ = connection.send(ServerMessage.error(error))
        case .forward(let desktop, let publish, let kind):
            guard let value = frame.envelope else { return }
            switch kind {
            case .sealed: admission.context.stats.sealedForwarded()
            case .handshake(let pattern): admission.context.stats.handshakeForwarded(pattern)
            default: break
            }
            let stamped = stampRelayIdentity(value, connectionID: connectionID, deviceID: deviceID)
            if let desktop { admission.router.deliver(stamped, to: desktop) }
            if publish { admission.router.publish(.desktop, sessionID: sessionID, payload: stamped) }
            admission.context.stats.forwarded(fromMobile: true)
        }
    }

    func receivedControlFrame() {
        let now = admission.context.now
        session.state.withLock { $0.touch(now) }
    }

    func closed() {
        let now = admission.context.now
        let connectionID = connection.connectionID
        let removed: Int? = session.state.withLock { s in
            guard let socket = s.mobiles[connectionID], socket.connection === connection else { return nil }
            s.removeMobile(connectionID: connectionID)
            s.touch(now)
            return s.mobiles.count
        }
        admission.releaseAdmission()
        guard let removed else { return }
        admission.router.updateSubscription(session)
        let router = admission.router, session = self.session
        guard admission.presence.isClustered else {
            router.announceDeviceCount(session, count: removed, publishing: true)
            return
        }
        // In a cluster the count is the devices connected anywhere, once this socket's claim is gone.
        let presence = admission.presence, deviceID = self.deviceID
        admission.context.work.submit {
            let live = await presence.release(.device(deviceID), of: session.id, holderID: connectionID)
            router.announceDeviceCount(session, count: session.state.withLock { $0.connectedDeviceCount(live: live) }, publishing: true)
        }
    }
}

import Logging
import Synchronization
import RelayProtocol

/// What arrives from other nodes (PROTOCOL §6.6).
extension Relay {
    func handleBusEnvelope(_ envelope: BusEnvelope) {
        let now = wallClockMillis()
        switch envelope.target {
        case .desktop, .mobile:
            guard let session = registry.session(envelope.sessionID) else { return }
            handleSessionTraffic(envelope, session: session, now: now)
        case .pairDecision:
            guard case .object(let fields)? = try? JSONValue.parse(envelope.payload),
                case .string(let requestID)? = fields["requestID"]
            else { return }
            var approved = false
            if case .bool(let b)? = fields["approved"] { approved = b }
            applyPairDecision(sessionID: envelope.sessionID, requestID: requestID, approved: approved)
        case .sessionRefresh:
            // DECISIONS 3: every node, with or without a copy, takes the stored record now.
            guard store.isShared else { return }
            var reason = DisconnectReason.removedFromPersistence
            if case .object(let fields)? = try? JSONValue.parse(envelope.payload), case .string(let r)? = fields["reason"],
                let named = DisconnectReason(rawValue: r)
            {
                reason = named
            }
            let sessionID = envelope.sessionID
            Task { [self] in
                do {
                    try await reloadSession(sessionID, goneReason: reason)
                } catch {
                    logger.warning("state store read failed on session refresh", metadata: ["error": "\(error)"])
                }
            }
        case .desktopStatusProbe:
            guard let session = registry.session(envelope.sessionID),
                case .object(let fields)? = try? JSONValue.parse(envelope.payload),
                case .string(let requester)? = fields["requestingInstanceID"]
            else { return }
            guard session.state.withLock({ $0.desktop != nil }) else { return }
            let response = JSONValue.object([
                "desktopConnected": .bool(true), "requestingInstanceID": .string(requester),
                "sessionID": .string(session.id), "type": .string("relay.desktop_status_response"),
            ])
            publish(.desktopStatusResponse, sessionID: session.id, payload: Array(response.serialized.utf8))
        case .desktopStatusResponse:
            guard let bus, let session = registry.session(envelope.sessionID),
                case .object(let fields)? = try? JSONValue.parse(envelope.payload),
                case .string(bus.instanceID)? = fields["requestingInstanceID"],
                case .bool(let connected)? = fields["desktopConnected"]
            else { return }
            session.state.withLock { $0.remoteDesktopPresent = connected }
        }
    }

    private func handleSessionTraffic(_ envelope: BusEnvelope, session: Session, now: Int64) {
        let payload = envelope.payload
        if envelope.target == .mobile, let deviceID = envelope.targetDeviceID {
            revokeDeviceLocally(session, deviceID: deviceID, now: now)
            updateSubscription(session)
            return
        }
        let parsed = (payload.first == UInt8(ascii: "{")) ? (try? JSONValue.parse(payload)) : nil
        var disconnectReason: DisconnectReason?
        if case .string("disconnect")? = parsed?["type"], case .string(let r)? = parsed?["reason"] {
            disconnectReason = DisconnectReason(rawValue: r)
        }
        let recipients: [any RelayConnection] = session.state.withLock { s in
            s.touch(now)
            if envelope.target == .desktop { return s.desktop.map { [$0] } ?? [] }
            if case .string("relay.desktop_status")? = parsed?["type"], case .bool(let connected)? = parsed?["desktopConnected"] {
                s.remoteDesktopPresent = connected
            }
            return s.mobileConnections
        }
        for connection in recipients { deliver(payload, to: connection) }
        if let disconnectReason { closeSession(session, reason: disconnectReason) }
    }
}

extension Relay {
    /// The bus went away or came back (see ``ClusterBus/start(handler:connectivity:)``).
    ///
    /// Down: phones whose desktop is on another node are told it is offline, so their commands
    /// get `desktop_offline` instead of vanishing. Up: every session this node holds is reloaded
    /// from the store (refreshes published meanwhile were lost), presence is probed again, and
    /// phones are told the desktop is back: the same signal a desktop reconnect gives, on which
    /// clients resync.
    func busConnectivityChanged(up: Bool) {
        if up {
            logger.notice("cluster bus connected; resyncing held sessions")
            Task { [self] in await resyncAfterBusOutage() }
        } else {
            logger.warning("cluster bus disconnected; remote desktops marked offline")
            for session in registry.allSessions {
                let mobiles: [any RelayConnection] = session.state.withLock { s in
                    guard !s.closed, s.desktop == nil, s.remoteDesktopPresent else { return [] }
                    s.remoteDesktopPresent = false
                    return s.mobileConnections
                }
                let status = ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: false)
                for mobile in mobiles { deliver(status, to: mobile) }
            }
        }
    }

    /// Asks the node holding the session's desktop, if any, to answer (PROTOCOL §6.6).
    func publishPresenceProbe(_ sessionID: String) {
        guard let bus else { return }
        let probe = JSONValue.object([
            "requestingInstanceID": .string(bus.instanceID), "sessionID": .string(sessionID),
            "type": .string("relay.desktop_status_probe"),
        ])
        publish(.desktopStatusProbe, sessionID: sessionID, payload: Array(probe.serialized.utf8))
    }

    private func resyncAfterBusOutage() async {
        let held = registry.allSessions.filter { session in session.state.withLock { !$0.closed && $0.hasLocalSockets } }
        for session in held {
            do {
                try await reloadSession(session.id)
            } catch {
                logger.warning("state store read failed during resync", metadata: ["error": "\(error)"])
            }
            let hasDesktop = session.state.withLock { !$0.closed && $0.desktop != nil }
            if hasDesktop {
                // Phones on other nodes may have missed frames: a desktop_status tells them to resync.
                publish(.mobile, sessionID: session.id, payload: ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: true))
            } else {
                publishPresenceProbe(session.id)
            }
        }
        // Probe answers set the presence flag; phones whose desktop answered hear that it is back.
        try? await Task.sleep(for: .milliseconds(300))
        for session in held {
            let mobiles: [any RelayConnection] = session.state.withLock { s in
                !s.closed && s.desktop == nil && s.remoteDesktopPresent ? s.mobileConnections : []
            }
            let status = ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: true)
            for mobile in mobiles { deliver(status, to: mobile) }
        }
    }
}

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
            // Cluster mode reloads the session from the shared store here; a single node has nothing to reload.
            break
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
    func busConnectivityChanged(up: Bool) {}
}

// What arrives from the other nodes, and what a node does when the bus goes and comes back.

import Logging
import Synchronization
import Tracing
import RelayProtocol

/// What arrives from other nodes (PROTOCOL §6.6): session traffic for the sockets this node
/// holds, pair decisions, session refreshes and desktop-presence probes; and what the node does
/// when the bus goes away and comes back.
final class BusInbox: NodePart, Sendable {
    let context: NodeContext
    let directory: SessionDirectory
    let router: Router
    let pairing: Pairing

    init(context: NodeContext, directory: SessionDirectory, router: Router, pairing: Pairing) {
        self.context = context
        self.directory = directory
        self.router = router
        self.pairing = pairing
    }

    /// One envelope from another node, on the bus's delivery thread: nothing here blocks.
    func receive(_ envelope: BusEnvelope) {
        let now = context.now
        switch envelope.target {
        case .desktop, .mobile:
            guard let session = directory.session(envelope.sessionID) else { return }
            handleSessionTraffic(envelope, session: session, now: now)
        case .pairDecision:
            guard case .object(let fields)? = try? JSONValue.parse(envelope.payload),
                case .string(let requestID)? = fields["requestID"]
            else { return }
            var approved = false
            if case .bool(let b)? = fields["approved"] { approved = b }
            // The deciding node checked the grant; one that still cannot be used (a node that does
            // not know grants passed it on) denies the join rather than give full access.
            var grant: DeviceGrant?
            if approved, let decision = PairDecision(fields: fields) {
                do {
                    grant = try decision.grant(defaultScope: context.configuration.defaultDeviceScope, now: now)
                } catch {
                    logger.warning("pair_decision_grant_refused reason=\"\(error.message)\"")
                    approved = false
                }
            }
            let matched = pairing.applyPairDecision(sessionID: envelope.sessionID, requestID: requestID, approved: approved, grant: grant)
            // Every node hears a decision; the one whose pending join it resolved traces it.
            if matched, let traceparent = envelope.traceparent, context.tracer != nil {
                let span = TraceSpan("relay.pair_decision receive", kind: .consumer, parent: traceparent, tracer: context.tracer)
                span.set("relay.session", Identifiers.redacted(envelope.sessionID))
                span.set("relay.source_node", envelope.sourceInstanceID)
                span.set("relay.approved", approved ? "true" : "false")
                span.end()
            }
        case .sessionRefresh:
            // DECISIONS 3: every node, with or without a copy, takes the stored record now.
            guard context.store.isShared else { return }
            var reason = DisconnectReason.removedFromPersistence
            if case .object(let fields)? = try? JSONValue.parse(envelope.payload), case .string(let r)? = fields["reason"],
                let named = DisconnectReason(rawValue: r)
            {
                reason = named
            }
            let sessionID = envelope.sessionID
            let directory = self.directory, logger = self.logger, goneReason = reason
            context.work.submit {
                do {
                    try await directory.reloadSession(sessionID, goneReason: goneReason)
                } catch {
                    logger.warning("state_store_read_failed on session refresh", metadata: ["error": "\(error)"])
                }
            }
        case .desktopStatusProbe:
            guard let session = directory.session(envelope.sessionID),
                case .object(let fields)? = try? JSONValue.parse(envelope.payload),
                case .string(let requester)? = fields["requestingInstanceID"]
            else { return }
            guard session.state.withLock({ $0.desktop != nil }) else { return }
            let response = JSONValue.object([
                "desktopConnected": .bool(true), "requestingInstanceID": .string(requester),
                "sessionID": .string(session.id), "type": .string("relay.desktop_status_response"),
            ])
            router.publish(.desktopStatusResponse, sessionID: session.id, payload: Array(response.serialized.utf8))
        case .desktopStatusResponse:
            guard let bus = context.bus, let session = directory.session(envelope.sessionID),
                case .object(let fields)? = try? JSONValue.parse(envelope.payload),
                case .string(bus.instanceID)? = fields["requestingInstanceID"],
                case .bool(let connected)? = fields["desktopConnected"]
            else { return }
            let source = envelope.sourceInstanceID
            session.state.withLock { s in
                if connected { s.remoteDesktopNode = source } else if s.remoteDesktopNode == source { s.remoteDesktopNode = nil }
            }
        }
    }

    private func handleSessionTraffic(_ envelope: BusEnvelope, session: Session, now: Int64) {
        let payload = envelope.payload
        if envelope.target == .mobile, let deviceID = envelope.targetDeviceID {
            directory.revokeDeviceLocally(session, deviceID: deviceID, now: now)
            router.updateSubscription(session)
            return
        }
        // One scan of the payload's top-level members: only relay-generated frames matter here.
        let scan = RelayFrameScan(payload)
        let recipients: [any RelayConnection] = session.state.withLock { s in
            s.touch(now)
            if envelope.target == .desktop {
                if scan.isDeviceCount && s.desktop != nil { s.remotePhoneNodes.insert(envelope.sourceInstanceID) }
                return s.desktop.map { [$0] } ?? []
            }
            if let connected = scan.desktopConnected {
                // A node says where the desktop is; a late "gone" from a node the desktop left
                // does not undo the newer node's "here".
                if connected {
                    s.remoteDesktopNode = envelope.sourceInstanceID
                } else if s.remoteDesktopNode == envelope.sourceInstanceID {
                    s.remoteDesktopNode = nil
                }
            }
            // Extension 11: only while a phone here replays or awaits its first envelope is the
            // payload's `seq` looked up.
            guard s.replaying > 0 || s.awaitingFirstLive > 0 else { return s.mobileConnections }
            return s.liveRecipients(seq: Self.envelopeSeq(payload), frame: payload)
        }
        // Before the delivery: the desktop's decision may come back at once and continues this span.
        var span = TraceSpan.none
        if let traceparent = envelope.traceparent, envelope.target == .desktop, context.tracer != nil {
            span = tracePairRequest(payload, traceparent: traceparent, source: envelope.sourceInstanceID, session: session, delivering: !recipients.isEmpty)
        }
        for connection in recipients { router.deliver(payload, to: connection) }
        span.end()
        if let reason = scan.disconnectReason { directory.closeSession(session, reason: reason) }
    }

    /// The integer top-level `seq` of a desktop envelope, if it is one.
    static func envelopeSeq(_ payload: [UInt8]) -> UInt64? {
        guard case .number(let number)? = (try? JSONValue.parseTopLevelMembers(payload, keeping: ["seq"]))?["seq"], number.isInteger
        else { return nil }
        return number.uint64
    }

    /// A traced `relay.pair_request` from the joining node: a span of the join's trace, kept for
    /// the desktop's decision to continue. The caller ends it once the request is handed over.
    private func tracePairRequest(_ payload: [UInt8], traceparent: String, source: String, session: Session, delivering: Bool) -> TraceSpan {
        guard case .object(let fields)? = try? JSONValue.parse(payload), case .string("relay.pair_request")? = fields["type"],
            case .string(let requestID)? = fields["requestID"]
        else { return .none }
        let span = TraceSpan("relay.pair_request receive", kind: .consumer, parent: traceparent, tracer: context.tracer)
        span.set("relay.session", Identifiers.redacted(session.id))
        span.set("relay.source_node", source)
        span.set("relay.delivered", delivering ? "true" : "false")
        if delivering, let continued = span.traceparent {
            session.state.withLock { $0.pairRequestTrace = (requestID, continued) }
        }
        return span
    }
}

extension BusInbox {
    /// The bus went away or came back (see ``ClusterBus/start(handler:connectivity:)``).
    ///
    /// Down: phones whose desktop is on another node are told it is offline, so their commands
    /// get `desktop_offline` instead of vanishing. Up: every session this node holds is reloaded
    /// from the store (refreshes published meanwhile were lost), presence is probed again, and
    /// phones are told the desktop is back: the same signal a desktop reconnect gives, on which
    /// clients resync.
    func connectivityChanged(up: Bool) {
        if up {
            logger.notice("cluster_bus_connected; resyncing held sessions")
            context.work.submit { [self] in await resyncAfterBusOutage() }
        } else {
            logger.warning("cluster_bus_disconnected; remote desktops marked offline")
            for session in directory.allSessions {
                let mobiles: [any RelayConnection] = session.state.withLock { s in
                    guard !s.closed, s.desktop == nil, s.remoteDesktopNode != nil else { return [] }
                    s.remoteDesktopNode = nil
                    return s.mobileConnections
                }
                let status = ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: false)
                for mobile in mobiles { router.deliver(status, to: mobile) }
            }
        }
    }

    private func resyncAfterBusOutage() async {
        let held = directory.allSessions.filter { session in session.state.withLock { !$0.closed && $0.hasLocalSockets } }
        for session in held {
            do {
                try await directory.reloadSession(session.id)
            } catch {
                logger.warning("state_store_read_failed during resync", metadata: ["error": "\(error)"])
            }
            let hasDesktop = session.state.withLock { !$0.closed && $0.desktop != nil }
            if hasDesktop {
                // Phones on other nodes may have missed frames: a desktop_status tells them to resync.
                router.publish(.mobile, sessionID: session.id, payload: ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: true))
            } else {
                // Asked over the bus, not read from the store: an answer also proves the desktop's
                // node is back on the bus, so a command sent after the signal below reaches it.
                router.publishPresenceProbe(session.id)
            }
        }
        // Probe answers, and the desktop nodes' own announcements, say where desktops are.
        try? await Task.sleep(for: .milliseconds(300))
        // Phones whose desktop is connected elsewhere hear that it is back.
        for session in held {
            let mobiles: [any RelayConnection] = session.state.withLock { s in
                !s.closed && s.desktop == nil && s.remoteDesktopNode != nil ? s.mobileConnections : []
            }
            let status = ServerMessage.desktopStatus(sessionID: session.id, desktopConnected: true)
            for mobile in mobiles { router.deliver(status, to: mobile) }
        }
    }
}

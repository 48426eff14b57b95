// Delivery to this node's sockets and publication to the other nodes.

import Logging
import RelayProtocol
import Synchronization

/// How a frame reaches a socket: enqueued on a local connection's bounded queue, or published on
/// the bus for the node that holds it. Also keeps this node's bus subscriptions to exactly the
/// sessions it holds sockets of.
final class Router: NodePart, Sendable {
    let context: NodeContext

    init(context: NodeContext) {
        self.context = context
    }

    /// Enqueues `frame` on `connection`; a full queue makes it a slow consumer (PROTOCOL §4.10).
    @discardableResult
    func deliver(_ frame: [UInt8], to connection: any RelayConnection, countFailure: Bool = true) -> Bool {
        switch connection.send(frame) {
        case .enqueued:
            return true
        case .full:
            if countFailure {
                context.stats.sendFailure(slowConsumer: true)
                context.logger.warning("slow_consumer_disconnect", metadata: ["connection": "\(connection.connectionID)"])
                context.logger.warning("outbound_send_failure reason=queue_full")
            }
            context.stats.disconnect(.slowConsumer)
            connection.terminate(.slowConsumer)
            return false
        case .closed:
            context.logger.debug("outbound_send_failure reason=queue_closed")
            return false
        }
    }

    /// `relay.device_count` to the session's desktop if this node holds it and, with `publishing`,
    /// to the node that does.
    func announceDeviceCount(_ session: Session, count: Int, publishing: Bool) {
        let frame = ServerMessage.deviceCount(sessionID: session.id, connectedDeviceCount: count)
        if let desktop = session.state.withLock({ $0.desktop }) { deliver(frame, to: desktop, countFailure: false) }
        if publishing { publish(.desktop, sessionID: session.id, payload: frame) }
    }

    /// Publishes a frame or control body for other nodes, if there are any.
    /// `traceparent` is the span it continues on the receiving node, on the pairing flow's envelopes.
    func publish(_ target: BusTarget, sessionID: String, payload: [UInt8], targetDeviceID: String? = nil, traceparent: String? = nil) {
        guard let bus = context.bus else { return }
        bus.publish(BusEnvelope(
            sessionID: sessionID, sourceInstanceID: bus.instanceID, target: target, targetDeviceID: targetDeviceID,
            payload: payload, issuedAtMillis: wallClockMillis(), nonce: Identifiers.shortID(), traceparent: traceparent))
    }

    /// Sends `disconnect` with `reason` to the session's sockets on every other node.
    func broadcastDisconnect(_ sessionID: String, reason: DisconnectReason) {
        let disconnect = ServerMessage.disconnect(reason)
        publish(.desktop, sessionID: sessionID, payload: disconnect)
        publish(.mobile, sessionID: sessionID, payload: disconnect)
    }

    /// Tells every node to reload the session from the store (DECISIONS 3). `reason` is what a
    /// node closes its copy with if the record is gone; nodes that do not know the field ignore it.
    func publishSessionRefresh(_ sessionID: String, reason: DisconnectReason? = nil) {
        var fields: [String: JSONValue] = ["sessionID": .string(sessionID), "type": .string("relay.session_refresh")]
        if let reason { fields["reason"] = .string(reason.rawValue) }
        publish(.sessionRefresh, sessionID: sessionID, payload: Array(JSONValue.object(fields).serialized.utf8))
    }

    /// Asks the node holding the session's desktop, if any, to answer (PROTOCOL §6.6).
    func publishPresenceProbe(_ sessionID: String) {
        guard let bus = context.bus else { return }
        let probe = JSONValue.object([
            "requestingInstanceID": .string(bus.instanceID), "sessionID": .string(sessionID),
            "type": .string("relay.desktop_status_probe"),
        ])
        publish(.desktopStatusProbe, sessionID: sessionID, payload: Array(probe.serialized.utf8))
    }

    /// Subscribes to the session's subject before a socket of it is announced, so nothing another
    /// node publishes right after `auth_ok` is lost; ``updateSubscription(_:)`` afterwards settles it.
    func subscribeAhead(_ session: Session) async {
        guard let bus = context.bus else { return }
        bus.setSubscribed(true, sessionID: session.id)
        await bus.confirmSubscriptions()
    }

    /// Keeps the session subject subscribed exactly while this node holds a socket of the session.
    func updateSubscription(_ session: Session) {
        guard let bus = context.bus else { return }
        let wanted = session.state.withLock { !$0.closed && $0.hasLocalSockets }
        bus.setSubscribed(wanted, sessionID: session.id)
    }

    /// Drops the session's subscription (the session is closed here).
    func unsubscribe(_ sessionID: String) {
        context.bus?.setSubscribed(false, sessionID: sessionID)
    }
}

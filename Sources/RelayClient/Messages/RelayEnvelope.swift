// What a desktop sends its phones (PROTOCOL §4.8): the envelope the relay forwards byte for byte.

import RelayProtocol

/// The kinds of desktop envelope the product uses (`payload.type`).
public struct RelayEnvelopeKind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The `payload.type` string.
    public let rawValue: String

    /// A kind; the relay forwards any, these four are the product's.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// `hello`: the desktop introduces itself after pairing or reconnecting.
    public static let hello = RelayEnvelopeKind(rawValue: "hello")
    /// `snapshot`: the whole state a phone shows; it replaces what the phone had.
    public static let snapshot = RelayEnvelopeKind(rawValue: "snapshot")
    /// `event`: one change since the last envelope.
    public static let event = RelayEnvelopeKind(rawValue: "event")
    /// `command_ack`: the desktop's answer to a phone's command.
    public static let commandAck = RelayEnvelopeKind(rawValue: "command_ack")

    public var description: String { rawValue }
}

/// A desktop envelope as a phone receives it:
/// `{"schemaVersion":2,"sessionID":…,"seq":n,"timestamp":…,"payload":{"type":…,…}}`.
public struct RelayEnvelope: Sendable, Equatable {
    /// The envelope's `seq`: one more than the previous envelope's, unless the desktop restarted.
    public var seq: UInt64
    /// `payload.type`.
    public var kind: RelayEnvelopeKind
    /// The `payload` object, `type` included.
    public var payload: JSONValue
    /// `timestamp`, as sent.
    public var timestamp: String?
    /// The frame exactly as received.
    public var text: String

    /// Reads a desktop frame; `nil` unless it is an object with a numeric `seq` and a `payload`
    /// object with a string `type`.
    init?(text: String, json: JSONValue) {
        guard let seq = json["seq"]?.uint64Value, let payload = json["payload"], let type = payload.type else { return nil }
        self.seq = seq
        self.kind = RelayEnvelopeKind(rawValue: type)
        self.payload = payload
        self.timestamp = json["timestamp"]?.stringValue
        self.text = text
    }

    /// The envelope a desktop sends: schema version 2, its session, `seq`, the time now, and
    /// `payload` with `type` set to `kind`.
    package static func serialize(sessionID: String, seq: UInt64, kind: RelayEnvelopeKind, payload: [String: JSONValue]) -> String {
        var body = payload
        body["type"] = .string(kind.rawValue)
        let envelope: JSONValue = [
            "schemaVersion": 2,
            "sessionID": .string(sessionID),
            "seq": .int(seq),
            "timestamp": .string(RelayTimestamp.now()),
            "payload": .object(body),
        ]
        return envelope.serialized
    }
}

// One message between nodes, as the core publishes and receives it.

/// One message between nodes, before signing and after verification (PROTOCOL §6.4). Each field
/// is the wire field of the same name in snake_case; the bus adds `schema_version` and `signature`.
public struct BusEnvelope: Sendable, Equatable {
    /// The session it concerns: the session subject it travels on, for session traffic.
    public var sessionID: String
    /// The publishing node's ``ClusterBus/instanceID``; a node drops its own envelopes.
    public var sourceInstanceID: String
    /// What it is for, and so which subject it travels on.
    public var target: BusTarget
    /// The one device a ``BusTarget/mobile`` envelope concerns: set only for a revocation.
    public var targetDeviceID: String?
    /// A JSON text: the frame to deliver, or the control body.
    public var payload: [UInt8]
    /// Publish time in wall-clock milliseconds since the Unix epoch: what the replay window and
    /// clock-skew checks measure.
    public var issuedAtMillis: Int64
    /// A random id per envelope: with `sourceInstanceID`, what replay protection remembers.
    public var nonce: String
    /// The W3C `traceparent` of the span that published it: set only on the pairing flow's
    /// envelopes while the node traces, so one pairing is one trace across nodes. Our extension
    /// of the contract: nodes that do not know it ignore the field.
    public var traceparent: String?

    /// An envelope with every field given; `targetDeviceID` stays nil except for a revocation.
    public init(
        sessionID: String, sourceInstanceID: String, target: BusTarget, targetDeviceID: String? = nil,
        payload: [UInt8], issuedAtMillis: Int64, nonce: String, traceparent: String? = nil
    ) {
        self.traceparent = traceparent
        self.sessionID = sessionID
        self.sourceInstanceID = sourceInstanceID
        self.target = target
        self.targetDeviceID = targetDeviceID
        self.payload = payload
        self.issuedAtMillis = issuedAtMillis
        self.nonce = nonce
    }
}

// What a desktop receives from a phone (PROTOCOL §4.7): a command, stamped by the relay.

import RelayProtocol

/// A phone's command as its desktop receives it, with the device and connection the relay
/// stamped on it (`relayDeviceID`, `relayConnectionID`; a phone cannot forge them).
public struct RelayIncomingCommand: Sendable, Equatable {
    /// The command, when its name and fields are ones this version knows.
    public var command: RelayCommand?
    /// `name`, as sent.
    public var name: String
    /// `commandID`: answer with it in a `command_ack` envelope.
    public var commandID: String
    /// Every member of the command object except `name` and `commandID`.
    public var fields: [String: JSONValue]
    /// The envelope's `seq` (per phone connection).
    public var seq: UInt64?
    /// The device that sent it.
    public var deviceID: String?
    /// The phone connection that sent it.
    public var connectionID: String?

    /// Reads a forwarded command envelope; `nil` for any other frame.
    init?(json: JSONValue) {
        guard json["payload"]?.type == "command", let object = json["payload"]?["payload"]?.objectValue,
            let name = object["name"]?.stringValue, let commandID = object["commandID"]?.stringValue
        else { return nil }
        var fields = object
        fields["name"] = nil
        fields["commandID"] = nil
        self.command = RelayCommand(name: name, fields: fields)
        self.name = name
        self.commandID = commandID
        self.fields = fields
        self.seq = json["seq"]?.uint64Value
        self.deviceID = json["relayDeviceID"]?.stringValue
        self.connectionID = json["relayConnectionID"]?.stringValue
    }
}

/// A phone's `relay.snapshot_request`, as its desktop receives it: answer with a `snapshot`
/// envelope.
public struct RelaySnapshotRequest: Sendable, Equatable {
    /// The device that asked.
    public var deviceID: String?
    /// Why it asked (this library sends `sequence_gap` and `reconnected`).
    public var reason: String?
    /// The last `seq` the phone processed, if it said.
    public var lastSeq: UInt64?

    init?(json: JSONValue) {
        guard json.type == "relay.snapshot_request" else { return nil }
        deviceID = json["relayDeviceID"]?.stringValue
        reason = json["reason"]?.stringValue
        lastSeq = json["lastSeq"]?.uint64Value ?? json["lastSeq"]?.stringValue.flatMap { UInt64($0) }
    }
}

// The relay-identity stamp: a phone's forwarded frame says which connection and device sent it.

/// Step 7 of forwarding: the compact serialization of `envelope` (keys sorted byte-wise) with the
/// top-level `relayConnectionID` and `relayDeviceID` set, replacing whatever the client sent.
/// A non-object is serialized unchanged.
public func stampRelayIdentity(_ envelope: JSONValue, connectionID: String, deviceID: String) -> [UInt8] {
    var buffer: [UInt8] = []
    guard case .object(let members) = envelope else {
        envelope.write(into: &buffer)
        return buffer
    }
    buffer.reserveCapacity(512)
    writeObject(capacity: members.count + 2, into: &buffer) { add in
        for (key, value) in members where !utf8Equal(key, "relayConnectionID") && !utf8Equal(key, "relayDeviceID") {
            add(key, value)
        }
        add("relayConnectionID", .string(connectionID))
        add("relayDeviceID", .string(deviceID))
    }
    return buffer
}

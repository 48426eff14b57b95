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
    // The members are gathered on the stack: no allocation besides the output.
    withUnsafeTemporaryAllocation(of: ObjectMember.self, capacity: members.count + 2) { storage in
        var count = 0
        for (key, value) in members where !utf8Equal(key, "relayConnectionID") && !utf8Equal(key, "relayDeviceID") {
            storage.initializeElement(at: count, to: ObjectMember(key: key, value: value))
            count += 1
        }
        storage.initializeElement(at: count, to: ObjectMember(key: "relayConnectionID", value: .string(connectionID)))
        storage.initializeElement(at: count + 1, to: ObjectMember(key: "relayDeviceID", value: .string(deviceID)))
        count += 2
        writeMembers(UnsafeBufferPointer(rebasing: storage[..<count]), into: &buffer)
        storage.baseAddress!.deinitialize(count: count)
    }
    return buffer
}

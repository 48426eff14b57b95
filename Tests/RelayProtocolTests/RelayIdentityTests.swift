// stampRelayIdentity: forwarding step 7, relay ids set over whatever the phone sent.

import RelayProtocol
import Testing

@Suite(.timeLimit(.minutes(2))) struct RelayIdentityTests {
    @Test func stampAddsRelayIdsAndSortsKeysCompactly() throws {
        let received = try JSONValue.parse(
            #"{ "seq": 1, "schemaVersion": 2, "payload": {"type":"command", "payload": {"name":"x"}} }"#)
        let stamped = stampRelayIdentity(received, connectionID: "conn_000000001", deviceID: "dev-1")
        #expect(
            String(decoding: stamped, as: UTF8.self)
                == #"{"payload":{"payload":{"name":"x"},"type":"command"},"relayConnectionID":"conn_000000001","relayDeviceID":"dev-1","schemaVersion":2,"seq":1}"#
        )
    }

    @Test func spoofedMobileMetadataIsOverwritten() throws {
        let spoofed = envelope(threadSelect, extra: ["relayConnectionID": "evil", "relayDeviceID": ["nested": true]])
        let stamped = try JSONValue.parse(stampRelayIdentity(spoofed, connectionID: "c1", deviceID: "d1"))
        #expect(stamped["relayConnectionID"] == "c1")
        #expect(stamped["relayDeviceID"] == "d1")
        // Everything else is untouched.
        var expected = spoofed.objectValue!
        expected["relayConnectionID"] = "c1"
        expected["relayDeviceID"] = "d1"
        #expect(stamped == .object(expected))
    }

    @Test func stampedIdsAreEscaped() throws {
        let stamped = stampRelayIdentity([:], connectionID: "a\"b", deviceID: "c\\d")
        #expect(String(decoding: stamped, as: UTF8.self) == #"{"relayConnectionID":"a\"b","relayDeviceID":"c\\d"}"#)
    }

    @Test func nonObjectIsSerializedUnchanged() {
        #expect(stampRelayIdentity([1, "x"], connectionID: "c", deviceID: "d") == Array(#"[1,"x"]"#.utf8))
    }

    @Test func injectingMobileMetadataOverwritesSpoofedValuesForArbitraryObjects() throws {
        var generator = SeededGenerator(seed: 0x1D_0001)
        for round in 0..<1000 {
            var members = generator.value(depth: 3).objectValue ?? [:]
            if Bool.random(using: &generator) { members["relayConnectionID"] = generator.value(depth: 2) }
            if Bool.random(using: &generator) { members["relayDeviceID"] = generator.value(depth: 2) }
            let connectionID = generator.string()
            let deviceID = generator.string()
            let stamped = try JSONValue.parse(
                stampRelayIdentity(.object(members), connectionID: connectionID, deviceID: deviceID))
            var expected = members
            expected["relayConnectionID"] = .string(connectionID)
            expected["relayDeviceID"] = .string(deviceID)
            #expect(stamped == .object(expected), "round \(round)")
            #expect(
                stamped.serialized.utf8.elementsEqual(
                    stampRelayIdentity(.object(members), connectionID: connectionID, deviceID: deviceID)))
        }
    }
}

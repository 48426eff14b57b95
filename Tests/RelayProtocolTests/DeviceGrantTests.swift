import RelayProtocol
import Testing

/// Extension 10's grant: what the three wire fields may hold, what each refusal says, and where
/// the grant goes in the relay's frames (after the contract's keys).
@Suite(.timeLimit(.minutes(1)))
struct DeviceGrantTests {
    static let now: Int64 = 1_800_000_000_000

    @Test func noFieldMeansNoGrantUnlessTheDefaultIsView() throws {
        #expect(try DeviceGrant.parse(scope: nil, allowedCommands: nil, grantExpiresAt: nil, now: Self.now) == nil)
        #expect(try DeviceGrant.parse(scope: .null, allowedCommands: .null, grantExpiresAt: .null, now: Self.now) == nil)
        #expect(try DeviceGrant.parse(scope: nil, allowedCommands: nil, grantExpiresAt: nil, defaultScope: .view, now: Self.now)
            == DeviceGrant(scope: .view))
        // Any field alone makes a grant, with the default scope.
        #expect(try DeviceGrant.parse(scope: nil, allowedCommands: ["thread.select"], grantExpiresAt: nil, now: Self.now)
            == DeviceGrant(scope: .control, allowedCommands: ["thread.select"]))
    }

    @Test func fieldsAreCheckedAndEachRefusalSaysWhy() {
        func refusal(_ scope: JSONValue?, _ commands: JSONValue?, _ expiry: JSONValue?) -> String? {
            do {
                _ = try DeviceGrant.parse(scope: scope, allowedCommands: commands, grantExpiresAt: expiry, now: Self.now)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(refusal("admin", nil, nil) == #"scope must be "control" or "view"."#)
        #expect(refusal(.int(1), nil, nil) == #"scope must be "control" or "view"."#)
        #expect(refusal("VIEW", nil, nil) == #"scope must be "control" or "view"."#)
        #expect(refusal(nil, "thread.select", nil) == "allowedCommands must be an array of command names.")
        #expect(refusal(nil, ["thread.select", "shell.exec"], nil)?.hasPrefix("allowedCommands may only name") == true)
        #expect(refusal(nil, [.int(3)], nil)?.hasPrefix("allowedCommands may only name") == true)
        #expect(refusal(nil, nil, "2027-01-15") == "grantExpiresAt must be an RFC 3339 timestamp.")
        #expect(refusal(nil, nil, .string(Timestamp.format(millis: Self.now))) == "grantExpiresAt must be in the future.")
        #expect(refusal("view", [], .string(Timestamp.format(millis: Self.now + 1000))) == nil)
    }

    @Test func denialsNameTheCommandOrTheScope() {
        let view = DeviceGrant(scope: .view, allowedCommands: ["thread.select"])
        #expect(view.denial(ofCommand: "thread.select") == MobileError(.scopeDenied, "This device can view the session but not control it."))
        let limited = DeviceGrant(scope: .control, allowedCommands: ["thread.select", "thread.select"])
        #expect(limited.allowedCommands == ["thread.select"])
        #expect(limited.denial(ofCommand: "thread.select") == nil)
        #expect(limited.denial(ofCommand: "project.select") == MobileError(.scopeDenied, "This device is not allowed to send 'project.select'."))
        #expect(DeviceGrant(scope: .control).denial(ofCommand: "anything") == nil)
        // A sealed command's name is unreadable (extension 12): only the scope can refuse it.
        #expect(limited.denial(ofCommand: nil) == nil)
        #expect(view.denial(ofCommand: nil) == MobileError(.scopeDenied, "This device can view the session but not control it."))
        #expect(DeviceGrant(scope: .control, expiresAtMillis: 10).hasExpired(at: 10))
        #expect(!DeviceGrant(scope: .control, expiresAtMillis: 10).hasExpired(at: 9))
    }

    @Test func framesCarryTheGrantAfterTheContractsKeys() throws {
        let grant = DeviceGrant(scope: .control, allowedCommands: ["thread.select", "project.select"], expiresAtMillis: 1_800_000_000_000)
        let authOK = String(decoding: ServerMessage.mobileAuthOK(
            sessionID: "s1", deviceID: "d1", nextDeviceSessionToken: "t", connectedDeviceCount: 1, desktopConnected: true, grant: grant),
            as: UTF8.self)
        #expect(authOK == #"{"type":"auth_ok","role":"mobile","sessionID":"s1","deviceID":"d1","nextDeviceSessionToken":"t","connectedDeviceCount":1,"desktopConnected":true,"scope":"control","allowedCommands":["project.select","thread.select"],"grantExpiresAt":"2027-01-15T08:00:00+00:00"}"#)
        let plain = String(decoding: ServerMessage.mobileAuthOK(
            sessionID: "s1", deviceID: "d1", nextDeviceSessionToken: "t", connectedDeviceCount: 1, desktopConnected: false), as: UTF8.self)
        #expect(plain == #"{"type":"auth_ok","role":"mobile","sessionID":"s1","deviceID":"d1","nextDeviceSessionToken":"t","connectedDeviceCount":1,"desktopConnected":false}"#)
        let scope = String(decoding: ServerMessage.scope(sessionID: "s1", grant: DeviceGrant(scope: .view)), as: UTF8.self)
        #expect(scope == #"{"type":"relay.scope","sessionID":"s1","scope":"view"}"#)
        // What a client reads back.
        #expect(DeviceGrant(fields: try JSONValue.parse(Array(authOK.utf8))) == grant)
        #expect(DeviceGrant(fields: try JSONValue.parse(Array(plain.utf8))) == nil)
    }
}

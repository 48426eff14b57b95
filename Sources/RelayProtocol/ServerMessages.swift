/// Relay → client frames (PROTOCOL §4.3, §4.5), built by hand in the contract's key order.
///
/// Struct-built messages keep the reference's field order; ad hoc ones (`relay.error`,
/// `disconnect`) have sorted keys. Clients must not depend on it, but tests read raw frames.
public enum ServerMessage {
    /// `auth_ok` for a desktop socket.
    public static func desktopAuthOK(sessionID: String, connectedDeviceCount: Int) -> [UInt8] {
        var b = Writer()
        b.raw(#"{"type":"auth_ok","role":"desktop","sessionID":"#)
        b.string(sessionID)
        b.raw(#","connectedDeviceCount":"#)
        b.raw(String(connectedDeviceCount))
        b.raw(#","desktopConnected":true}"#)
        return b.bytes
    }

    /// `auth_ok` for a mobile socket, carrying the rotated token for its next connection.
    /// A device with a grant (extension 10) gets its fields after the contract's keys.
    public static func mobileAuthOK(
        sessionID: String, deviceID: String, nextDeviceSessionToken: String, connectedDeviceCount: Int,
        desktopConnected: Bool, grant: DeviceGrant? = nil
    ) -> [UInt8] {
        var b = Writer()
        b.raw(#"{"type":"auth_ok","role":"mobile","sessionID":"#)
        b.string(sessionID)
        b.raw(#","deviceID":"#)
        b.string(deviceID)
        b.raw(#","nextDeviceSessionToken":"#)
        b.string(nextDeviceSessionToken)
        b.raw(#","connectedDeviceCount":"#)
        b.raw(String(connectedDeviceCount))
        b.raw(desktopConnected ? #","desktopConnected":true"# : #","desktopConnected":false"#)
        if let grant { b.grantFields(grant) }
        b.raw("}")
        return b.bytes
    }

    /// `relay.scope` (extension 10) to a device's open sockets when the desktop changes its grant.
    public static func scope(sessionID: String, grant: DeviceGrant) -> [UInt8] {
        var b = Writer()
        b.raw(#"{"type":"relay.scope","sessionID":"#)
        b.string(sessionID)
        b.grantFields(grant)
        b.raw("}")
        return b.bytes
    }

    /// `relay.resumed` (extension 11): the end of a replay after `relay.resume`.
    public static func resumed(sessionID: String, fromSeq: UInt64, toSeq: UInt64, complete: Bool) -> [UInt8] {
        var b = Writer()
        b.raw(#"{"type":"relay.resumed","sessionID":"#)
        b.string(sessionID)
        b.raw(#","fromSeq":"#)
        b.raw(String(fromSeq))
        b.raw(#","toSeq":"#)
        b.raw(String(toSeq))
        b.raw(complete ? #","complete":true}"# : #","complete":false}"#)
        return b.bytes
    }

    /// `relay.pair_request` to the desktop while a `/pair/join` waits for approval.
    public static func pairRequest(
        sessionID: String, requestID: String, deviceName: String?, requesterIP: String, requestedAt: String,
        expiresAt: String
    ) -> [UInt8] {
        var b = Writer()
        b.raw(#"{"type":"relay.pair_request","sessionID":"#)
        b.string(sessionID)
        b.raw(#","requestID":"#)
        b.string(requestID)
        if let deviceName {
            b.raw(#","deviceName":"#)
            b.string(deviceName)
        }
        b.raw(#","requesterIP":"#)
        b.string(requesterIP)
        b.raw(#","requestedAt":"#)
        b.string(requestedAt)
        b.raw(#","expiresAt":"#)
        b.string(expiresAt)
        b.raw("}")
        return b.bytes
    }

    /// `relay.pair_result` echoed to the deciding desktop socket.
    public static func pairResult(sessionID: String, requestID: String, approved: Bool) -> [UInt8] {
        var b = Writer()
        b.raw(#"{"type":"relay.pair_result","sessionID":"#)
        b.string(sessionID)
        b.raw(#","requestID":"#)
        b.string(requestID)
        b.raw(approved ? #","approved":true}"# : #","approved":false}"#)
        return b.bytes
    }

    /// `relay.device_count`: mobile sockets of the session on the sending node.
    public static func deviceCount(sessionID: String, connectedDeviceCount: Int) -> [UInt8] {
        var b = Writer()
        b.raw(#"{"type":"relay.device_count","sessionID":"#)
        b.string(sessionID)
        b.raw(#","connectedDeviceCount":"#)
        b.raw(String(connectedDeviceCount))
        b.raw("}")
        return b.bytes
    }

    /// `relay.desktop_status` to mobiles when the desktop comes or goes.
    public static func desktopStatus(sessionID: String, desktopConnected: Bool) -> [UInt8] {
        var b = Writer()
        b.raw(#"{"type":"relay.desktop_status","sessionID":"#)
        b.string(sessionID)
        b.raw(desktopConnected ? #","desktopConnected":true}"# : #","desktopConnected":false}"#)
        return b.bytes
    }

    /// `relay.error` to a mobile whose frame was rejected (no `sessionID`, as in the reference).
    public static func error(_ error: MobileError) -> [UInt8] {
        var b = Writer()
        b.raw(#"{"error":""#)
        b.raw(error.code.rawValue)
        b.raw(#"","message":"#)
        b.string(error.message)
        b.raw(#","type":"relay.error"}"#)
        return b.bytes
    }

    /// `{"reason":…,"type":"disconnect"}`.
    public static func disconnect(_ reason: DisconnectReason) -> [UInt8] { Array(reason.frameText.utf8) }

    private struct Writer {
        var bytes: [UInt8] = []
        init() { bytes.reserveCapacity(192) }
        mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }
        mutating func string(_ s: String) { appendJSONString(s, to: &bytes) }
        mutating func grantFields(_ grant: DeviceGrant) {
            for field in grant.wireFields {
                raw(",")
                string(field.key)
                raw(":")
                raw(field.value.serialized)
            }
        }
    }
}

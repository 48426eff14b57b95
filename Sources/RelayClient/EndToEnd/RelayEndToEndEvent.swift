// What happens to a session's end-to-end encryption, for the app (both roles).

/// An end-to-end event (extension 12), delivered as ``RelayPhoneEvent/endToEnd(_:)`` or
/// ``RelayDesktopEvent/endToEnd(_:)``.
public enum RelayEndToEndEvent: Sendable, Equatable {
    /// A handshake completed: on a phone, its own (`epoch` is the content key's it received; it
    /// can send commands now); on a desktop, a phone's (`epoch` nil).
    case secured(deviceID: String, epoch: UInt64?)
    /// A phone received a new epoch's key (a phone was revoked, or the desktop restarted).
    case rekeyed(epoch: UInt64)
    /// A desktop pinned a phone that paired through an `e2e=1` link: it holds the pairing secret.
    case pinned(deviceID: String)
    /// A frame was refused and dropped: tampered, replayed, from another session or epoch, a
    /// handshake that failed, or plaintext on an end-to-end session.
    case refused(deviceID: String?, EndToEndError)
    /// A desktop refused a phone's sealed command that opened but breaks the protocol's rules or
    /// the phone's grant (what the relay refuses for plaintext commands).
    case commandRefused(deviceID: String, code: String, message: String)
}

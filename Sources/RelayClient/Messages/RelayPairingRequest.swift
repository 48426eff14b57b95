// A phone asking to join (PROTOCOL §4.5 `relay.pair_request`), for the desktop to approve or deny.

import Foundation
import RelayProtocol

/// A phone waiting in `/pair/join` for this desktop's decision; answer with
/// ``RelayDesktopClient/decide(_:approve:)`` before ``expiresAt``.
public struct RelayPairingRequest: Sendable, Equatable {
    /// The id the decision names.
    public var requestID: String
    /// The name the phone gave, if any (show it to the user before approving).
    public var deviceName: String?
    /// The phone's address as the relay saw it.
    public var requesterIP: String?
    /// When the relay stops waiting, as sent (RFC 3339).
    public var expiresAt: String?

    init?(json: JSONValue) {
        guard json.type == "relay.pair_request", let requestID = json["requestID"]?.stringValue else { return nil }
        self.requestID = requestID
        self.deviceName = json["deviceName"]?.stringValue
        self.requesterIP = json["requesterIP"]?.stringValue
        self.expiresAt = json["expiresAt"]?.stringValue
    }
}

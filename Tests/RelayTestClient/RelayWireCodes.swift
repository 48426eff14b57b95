// Typed access to the wire codes of RelayProtocol (WireCodes.swift) from parsed frames and responses.

import RelayProtocol

extension JSONValue {
    /// The reason of a `{"reason":…,"type":"disconnect"}` frame, when this is one with a known reason.
    package var disconnectReason: DisconnectReason? {
        guard type == "disconnect", let reason = self["reason"]?.stringValue else { return nil }
        return DisconnectReason(rawValue: reason)
    }

    /// The code of a `relay.error` frame, when this is one with a known code.
    package var mobileErrorCode: MobileErrorCode? {
        guard type == "relay.error", let code = self["error"]?.stringValue else { return nil }
        return MobileErrorCode(rawValue: code)
    }
}

extension RelayHTTPResponse {
    /// The `error` member of a JSON error body as a known ``HTTPErrorCode``, if it is one.
    package var httpErrorCode: HTTPErrorCode? { errorCode.flatMap(HTTPErrorCode.init(rawValue:)) }
}

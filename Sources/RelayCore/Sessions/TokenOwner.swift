// Who a WebSocket auth token belongs to.

/// The session (and device) a socket's auth token names.
enum TokenOwner {
    case desktop(Session)
    case device(Session, deviceID: String)
}

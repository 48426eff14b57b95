// libnats status codes as text, and as the errors the bus throws.

import CNats

/// libnats's text for `status`.
func statusText(_ status: natsStatus) -> String {
    guard let text = natsStatus_GetText(status) else { return "status \(status.rawValue)" }
    return String(cString: text)
}

/// libnats's last error on this thread, as `": detail"`, or empty.
func lastErrorDetail() -> String {
    var status = NATS_OK
    guard let text = nats_GetLastError(&status) else { return "" }
    let detail = String(cString: text)
    return detail.isEmpty ? "" : ": \(detail)"
}

/// Throws a ``NATSBusError`` naming `what` unless `status` is `NATS_OK`.
func check(_ status: natsStatus, _ what: String) throws(NATSBusError) {
    guard status == NATS_OK else {
        throw NATSBusError("NATS: cannot \(what): \(statusText(status))\(lastErrorDetail())")
    }
}

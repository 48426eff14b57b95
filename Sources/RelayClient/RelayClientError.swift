// Errors thrown by the relay client: transport failures, timeouts and protocol surprises.

/// An error raised by `RelayClient`.
///
/// Every case renders a sentence through `description` that says what was expected and what
/// arrived (a log line an on-call engineer can act on); none carries a token.
public enum RelayClientError: Error, Sendable, CustomStringConvertible {
    /// The URL string could not be parsed, or lacks a host.
    case invalidURL(String)
    /// The URL uses a scheme this client does not speak (`http` and `https` for the relay's base
    /// URL, `ws` and `wss` for its WebSocket).
    case unsupportedScheme(String)
    /// A ``RelayTLS`` setting could not be made: an unreadable CA file, no certificate in it, a
    /// malformed pin.
    case invalidTLSConfiguration(String)
    /// The TLS handshake with `host` failed; `reason` says why (an untrusted certificate, a
    /// pin that does not match, a protocol error).
    case tlsFailed(host: String, reason: String)
    /// An operation did not complete in time; the text names the operation.
    case timedOut(String)
    /// The connection ended before the operation completed; the text names the operation.
    case connectionClosed(String)
    /// The server answered the WebSocket upgrade request with something other than `101`.
    case upgradeRejected(status: Int, body: String)
    /// A WebSocket read returned an event that the caller did not expect; `received` describes it.
    case unexpectedEvent(expected: String, received: String)
    /// A JSON frame or body did not have the expected shape.
    case unexpectedJSON(expected: String, received: String)
    /// Text that should be JSON did not parse.
    case invalidJSON(reason: String, text: String)
    /// An HTTP call returned a status other than the one the helper needs.
    case unexpectedStatus(operation: String, status: Int, body: String)
    /// WebSocket authentication did not yield `auth_ok`; `received` describes the first event.
    case authRejected(role: String, received: String)
    /// A role method needs state that an earlier step provides (for example `wsURL`).
    case notReady(String)
    /// A send between connections (the client is reconnecting, or closed); nothing was sent.
    case notConnected(String)
    /// The relay refused an HTTP call: its status, and the `error` code and `message` of its JSON
    /// body when it sent one (`pair_request_denied`, `join_token_expired`, …).
    case requestRefused(operation: String, status: Int, code: String?, message: String?)
    /// Two tasks tried to read the same WebSocket at once; a socket has exactly one consumer.
    case concurrentReceive
    /// The server violated RFC 6455 (e.g. a continuation frame without a start frame).
    case protocolViolation(String)

    /// The relay's error code of a ``requestRefused(operation:status:code:message:)`` as a known
    /// value (`pair_request_denied`, `join_token_expired`, …).
    public var httpErrorCode: HTTPErrorCode? {
        if case .requestRefused(_, _, let code?, _) = self { HTTPErrorCode(rawValue: code) } else { nil }
    }

    /// A human-readable explanation of the failure.
    public var description: String {
        switch self {
        case .invalidURL(let url):
            "invalid URL: \(url)"
        case .unsupportedScheme(let url):
            "unsupported URL scheme (http://, https://, ws:// and wss:// are supported): \(url)"
        case .invalidTLSConfiguration(let what):
            "invalid TLS setting: \(what)"
        case .tlsFailed(let host, let reason):
            "TLS with \(host) failed: \(reason)"
        case .timedOut(let what):
            "timed out: \(what)"
        case .connectionClosed(let what):
            "connection closed: \(what)"
        case .upgradeRejected(let status, let body):
            "WebSocket upgrade rejected with HTTP \(status): \(body)"
        case .unexpectedEvent(let expected, let received):
            "expected \(expected), received \(received)"
        case .unexpectedJSON(let expected, let received):
            "expected \(expected), received \(received)"
        case .invalidJSON(let reason, let text):
            "invalid JSON (\(reason)): \(text.prefix(512))"
        case .unexpectedStatus(let operation, let status, let body):
            "\(operation) returned HTTP \(status): \(body)"
        case .authRejected(let role, let received):
            "\(role) WebSocket authentication failed; first event: \(received)"
        case .notReady(let what):
            "not ready: \(what)"
        case .notConnected(let what):
            "not connected: \(what)"
        case .requestRefused(let operation, let status, let code, let message):
            "\(operation) was refused with HTTP \(status)" + (code.map { " \($0)" } ?? "") + (message.map { ": \($0)" } ?? "")
        case .concurrentReceive:
            "a WebSocket was read by two tasks at once; it supports a single consumer"
        case .protocolViolation(let what):
            "WebSocket protocol violation: \(what)"
        }
    }
}

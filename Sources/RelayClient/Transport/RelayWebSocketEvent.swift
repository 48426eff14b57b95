// What a RelayWebSocket reader sees, and the opcodes a test may put on the wire.

/// One inbound WebSocket event, in arrival order.
package enum RelayWebSocketEvent: Sendable, Equatable, CustomStringConvertible {
    /// A complete text message (fragments reassembled), decoded as UTF-8.
    case text(String)
    /// A complete binary message (fragments reassembled).
    case binary([UInt8])
    /// A ping frame with its payload (answered automatically when `autoReplyPings` is on).
    case ping([UInt8])
    /// A pong frame with its payload.
    case pong([UInt8])
    /// A close frame: its status code (`nil` when the frame had no payload) and reason text.
    case close(code: UInt16?, reason: String)
    /// The TCP connection ended (or failed). Every read after this returns `.closed` again.
    case closed

    /// A short rendering for test failure messages.
    package var description: String {
        switch self {
        case .text(let text): "text(\(text.prefix(512)))"
        case .binary(let bytes): "binary(\(bytes.count) bytes)"
        case .ping(let bytes): "ping(\(bytes.count) bytes)"
        case .pong(let bytes): "pong(\(bytes.count) bytes)"
        case .close(let code, let reason): "close(code: \(code.map(String.init) ?? "none"), reason: \"\(reason)\")"
        case .closed: "closed"
        }
    }

    /// The text, when this is a text message.
    package var text: String? {
        if case .text(let text) = self { return text }
        return nil
    }

    /// Whether this event ends the conversation (a close frame or the end of the stream).
    package var isTermination: Bool {
        switch self {
        case .close, .closed: true
        default: false
        }
    }
}

/// A WebSocket frame opcode (RFC 6455 §5.2), for ``RelayWebSocket/sendRawFrame(opcode:fin:payload:masked:)``.
///
/// Any 4-bit value is representable, so tests can send reserved opcodes too.
package struct RelayWebSocketOpcode: Sendable, Hashable, CustomStringConvertible {
    /// The 4-bit opcode value.
    package let rawValue: UInt8

    /// Creates an opcode; `nil` unless `rawValue` fits in 4 bits.
    package init?(rawValue: UInt8) {
        guard rawValue < 16 else { return nil }
        self.rawValue = rawValue
    }

    private init(uncheckedRawValue: UInt8) { self.rawValue = uncheckedRawValue }

    /// Continuation of a fragmented message (0x0).
    package static let continuation = RelayWebSocketOpcode(uncheckedRawValue: 0x0)
    /// Text (0x1).
    package static let text = RelayWebSocketOpcode(uncheckedRawValue: 0x1)
    /// Binary (0x2).
    package static let binary = RelayWebSocketOpcode(uncheckedRawValue: 0x2)
    /// Connection close (0x8).
    package static let close = RelayWebSocketOpcode(uncheckedRawValue: 0x8)
    /// Ping (0x9).
    package static let ping = RelayWebSocketOpcode(uncheckedRawValue: 0x9)
    /// Pong (0xA).
    package static let pong = RelayWebSocketOpcode(uncheckedRawValue: 0xA)

    /// The opcode in hexadecimal.
    package var description: String { "0x" + String(rawValue, radix: 16) }
}

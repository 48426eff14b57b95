// What Redis answers (RESP2, as hiredis 0.14 reads it).

import CHiredis

/// One Redis reply.
public enum RedisReply: Sendable, Equatable {
    /// A bulk string, as bytes.
    case string([UInt8])
    /// An integer.
    case integer(Int64)
    /// An array (multi-bulk) of replies.
    case array([RedisReply])
    /// A nil bulk string or nil array (`GET` of a missing key).
    case null
    /// A status line such as `OK` or `PONG`.
    case status(String)
    /// An error line such as `ERR unknown command …`; the connection stays usable.
    case error(String)

    /// The bulk string as UTF-8 text (invalid bytes repaired), or the status line.
    public var text: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let status): status
        default: nil
        }
    }

    /// The integer, if this is one.
    public var integer: Int64? {
        guard case .integer(let value) = self else { return nil }
        return value
    }

    /// The elements, if this is an array.
    public var array: [RedisReply]? {
        guard case .array(let elements) = self else { return nil }
        return elements
    }

    /// True for `.null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Throws ``RedisError/Kind/server`` for an error reply, returns `self` otherwise.
    public func throwingServerError() throws(RedisError) -> RedisReply {
        if case .error(let message) = self { throw RedisError(.server, message) }
        return self
    }

    /// Copies a hiredis reply tree (the caller frees it).
    init(_ reply: UnsafePointer<redisReply>) {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            self = .string(Self.bytes(value.str, value.len))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(value.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                if let element = value.element[index] { elements.append(RedisReply(element)) } else { elements.append(.null) }
            }
            self = .array(elements)
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: Self.bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: Self.bytes(value.str, value.len), as: UTF8.self))
        default:
            self = .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: count) { Array(UnsafeBufferPointer(start: $0, count: count)) }
    }
}

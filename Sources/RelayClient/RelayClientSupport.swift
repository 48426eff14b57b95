// Identifier generation, RFC 3339 timestamps and JSON parsing shared by the client types.

import Foundation
import RelayProtocol

/// Random identifiers in the shape the reference clients generate (PROTOCOL §1).
package enum RelayTokens {
    /// Base64url without padding of `byteCount` bytes from `SystemRandomNumberGenerator`.
    package static func random(byteCount: Int) -> String { Identifiers.random(bytes: byteCount) }

    /// A session id: 16 random bytes, 22 characters.
    package static func sessionID() -> String { random(byteCount: 16) }

    /// A join or desktop session token: 32 random bytes, 43 characters.
    package static func token() -> String { random(byteCount: 32) }

    /// Base64url (RFC 4648 §5) without padding.
    package static func base64URL(_ bytes: [UInt8]) -> String { Identifiers.base64URL(bytes) }
}

/// RFC 3339 timestamps in UTC, as ``Timestamp`` writes them.
package enum RelayTimestamp {
    /// Formats `date` like the reference relay (`…+00:00`, milliseconds unless a whole second),
    /// or with a `Z` suffix when `zulu` is true.
    package static func rfc3339(_ date: Date, zulu: Bool = false) -> String {
        let text = Timestamp.format(millis: Int64((date.timeIntervalSince1970 * 1000).rounded(.down)))
        return zulu ? String(text.dropLast(6)) + "Z" : text
    }

    /// The current time, formatted by ``rfc3339(_:zulu:)``.
    package static func now() -> String { rfc3339(Date()) }
}

/// Parses one JSON document (``JSONValue/parse(_:)-(Bytes)``), reporting a failure as
/// ``RelayClientError/invalidJSON(reason:text:)`` with the text, so a failing test shows what arrived.
func parseJSON<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(RelayClientError) -> JSONValue {
    do {
        return try JSONValue.parse(bytes)
    } catch {
        throw .invalidJSON(reason: error.description, text: String(decoding: bytes, as: UTF8.self))
    }
}

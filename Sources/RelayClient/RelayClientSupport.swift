// Identifier generation, RFC 3339 timestamps and URL parsing shared by the client types.

import Foundation

/// Random identifiers in the shape the reference clients generate (PROTOCOL §1).
public enum RelayTokens {
    /// Base64url without padding of `byteCount` bytes from `SystemRandomNumberGenerator`.
    public static func random(byteCount: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8]()
        bytes.reserveCapacity(byteCount)
        for _ in 0..<byteCount { bytes.append(UInt8.random(in: .min ... .max, using: &generator)) }
        return base64URL(bytes)
    }

    /// A session id: 16 random bytes, 22 characters.
    public static func sessionID() -> String { random(byteCount: 16) }

    /// A join or desktop session token: 32 random bytes, 43 characters.
    public static func token() -> String { random(byteCount: 32) }

    /// Base64url (RFC 4648 §5) without padding.
    public static func base64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var output = [UInt8]()
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            output.append(alphabet[Int(chunk >> 18 & 63)])
            output.append(alphabet[Int(chunk >> 12 & 63)])
            output.append(alphabet[Int(chunk >> 6 & 63)])
            output.append(alphabet[Int(chunk & 63)])
            index += 3
        }
        let remaining = bytes.count - index
        if remaining == 1 {
            let chunk = UInt32(bytes[index]) << 16
            output.append(alphabet[Int(chunk >> 18 & 63)])
            output.append(alphabet[Int(chunk >> 12 & 63)])
        } else if remaining == 2 {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            output.append(alphabet[Int(chunk >> 18 & 63)])
            output.append(alphabet[Int(chunk >> 12 & 63)])
            output.append(alphabet[Int(chunk >> 6 & 63)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// RFC 3339 timestamps in UTC.
public enum RelayTimestamp {
    /// Formats `date` as `YYYY-MM-DDTHH:MM:SS.mmm+00:00` (or `…Z` when `zulu` is true), the way
    /// the reference relay writes millisecond values.
    public static func rfc3339(_ date: Date, zulu: Bool = false) -> String {
        let totalMilliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var days = totalMilliseconds / 86_400_000
        var milliseconds = totalMilliseconds % 86_400_000
        if milliseconds < 0 {
            milliseconds += 86_400_000
            days -= 1
        }
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        let hour = milliseconds / 3_600_000
        let minute = milliseconds / 60_000 % 60
        let second = milliseconds / 1000 % 60
        let millisecond = milliseconds % 1000
        let suffix = zulu ? "Z" : "+00:00"
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(millisecond, 3))\(suffix)"
    }

    /// The current time, formatted by ``rfc3339(_:zulu:)``.
    public static func now() -> String { rfc3339(Date()) }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// Howard Hinnant's `civil_from_days`: proleptic Gregorian date of a day count since 1970-01-01.
    private static func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthPrime = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthPrime + 2) / 5 + 1
        let month = monthPrime < 10 ? monthPrime + 3 : monthPrime - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }
}

/// A parsed `http://` or `ws://` URL: where to connect and what to put on the request line.
struct RelayEndpoint: Sendable {
    /// Host to connect to (IPv6 literals without brackets).
    let host: String
    /// TCP port.
    let port: Int
    /// Value of the `Host` header.
    let hostHeader: String
    /// Percent-encoded path without a trailing slash (may be empty), used as a prefix.
    let basePath: String
    /// Percent-encoded path and query, as the request target of the URL itself.
    let requestTarget: String

    /// Parses `string`, accepting only `allowedScheme` (`http` or `ws`); the secure variant is
    /// rejected with ``RelayClientError/unsupportedScheme(_:)``.
    static func parse(_ string: String, allowedScheme: String) throws -> RelayEndpoint {
        guard let components = URLComponents(string: string), let scheme = components.scheme?.lowercased() else {
            throw RelayClientError.invalidURL(string)
        }
        guard scheme == allowedScheme else { throw RelayClientError.unsupportedScheme(string) }
        guard var host = components.host, !host.isEmpty else { throw RelayClientError.invalidURL(string) }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? 80
        let bracketed = host.contains(":") ? "[\(host)]" : host
        let hostHeader = port == 80 ? bracketed : "\(bracketed):\(port)"
        var path = components.percentEncodedPath
        var target = path.isEmpty ? "/" : path
        if let query = components.percentEncodedQuery { target += "?\(query)" }
        while path.hasSuffix("/") { path.removeLast() }
        return RelayEndpoint(host: host, port: port, hostHeader: hostHeader, basePath: path, requestTarget: target)
    }
}

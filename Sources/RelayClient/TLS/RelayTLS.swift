// How the client decides to trust a relay's certificate on https:// and wss://.

import Foundation
import RelayProtocol
import Synchronization

/// How a client checks the certificate of a relay reached over `https://` or `wss://`.
///
/// The default, ``system``, trusts what the platform trusts, with the host name checked. A relay
/// on a LAN or Tailscale address usually has a certificate from a private CA: trust that CA with
/// ``certificateAuthorities(pem:)``, or pin the relay's own certificate with
/// ``pinnedCertificate(sha256:)``. Plain `http://` and `ws://` URLs ignore this setting.
public struct RelayTLS: Sendable, CustomStringConvertible {
    /// What a certificate must chain to, or be.
    public enum Trust: Sendable, Equatable {
        /// The platform's trusted roots; the certificate must name the host.
        case systemRoots
        /// Only these CA certificates (DER); the certificate must chain to one and name the host.
        case certificateAuthorities([[UInt8]])
        /// Exactly the certificate whose DER encoding has this SHA-256 digest; no chain or host
        /// name is checked (the pin is the identity), so a self-signed certificate works.
        case pinnedCertificate(sha256: [UInt8])
    }

    /// What this configuration trusts.
    public let trust: Trust
    /// The built platform context, made on first use and shared by every connection with this value.
    let cache = NIOSSLContextCache()

    /// Trusts `trust`.
    public init(trust: Trust) { self.trust = trust }

    /// The platform's trusted roots, with the host name checked.
    public static var system: RelayTLS { RelayTLS(trust: .systemRoots) }

    /// Trusts only the CA certificates in `pem` (one or more `BEGIN CERTIFICATE` blocks).
    ///
    /// - Throws: ``RelayClientError/invalidTLSConfiguration(_:)`` when `pem` holds no certificate.
    public static func certificateAuthorities(pem: String) throws(RelayClientError) -> RelayTLS {
        let certificates = PEMCertificates.derBlocks(in: pem)
        guard !certificates.isEmpty else {
            throw .invalidTLSConfiguration("no PEM certificate (-----BEGIN CERTIFICATE-----) in the CA text")
        }
        return RelayTLS(trust: .certificateAuthorities(certificates))
    }

    /// Trusts only the CA certificates in the PEM file at `path`.
    ///
    /// - Throws: ``RelayClientError/invalidTLSConfiguration(_:)`` when the file cannot be read or
    ///   holds no certificate; the message names the file.
    public static func certificateAuthorities(pemFile path: String) throws(RelayClientError) -> RelayTLS {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .invalidTLSConfiguration("cannot read the CA file \(path): \(error.localizedDescription)")
        }
        do {
            return try certificateAuthorities(pem: text)
        } catch {
            throw .invalidTLSConfiguration("the CA file \(path) holds no PEM certificate")
        }
    }

    /// Trusts exactly one certificate: the one whose DER encoding hashes to `sha256`, given as 64
    /// hex digits (colons and spaces allowed, as `openssl x509 -fingerprint -sha256` prints it).
    ///
    /// - Throws: ``RelayClientError/invalidTLSConfiguration(_:)`` when it is not 32 bytes of hex.
    public static func pinnedCertificate(sha256 fingerprint: String) throws(RelayClientError) -> RelayTLS {
        let digits = fingerprint.filter { $0 != ":" && $0 != " " }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2, limitedBy: digits.endIndex) ?? digits.endIndex
            guard let byte = UInt8(digits[index..<next], radix: 16), digits.distance(from: index, to: next) == 2 else {
                throw .invalidTLSConfiguration("a SHA-256 pin is 64 hex digits; got \(fingerprint.count) characters")
            }
            bytes.append(byte)
            index = next
        }
        guard bytes.count == 32 else {
            throw .invalidTLSConfiguration("a SHA-256 pin is 64 hex digits; got \(digits.count)")
        }
        return RelayTLS(trust: .pinnedCertificate(sha256: bytes))
    }

    /// Whether `certificate` (DER) is the pinned one.
    static func matchesPin(_ certificate: [UInt8], _ pin: [UInt8]) -> Bool {
        SHA256.hash(certificate) == pin
    }

    /// Names the trust without the certificates' bytes.
    public var description: String {
        switch trust {
        case .systemRoots: "RelayTLS(system roots)"
        case .certificateAuthorities(let cas): "RelayTLS(\(cas.count) CA certificate\(cas.count == 1 ? "" : "s"))"
        case .pinnedCertificate: "RelayTLS(pinned certificate)"
        }
    }
}

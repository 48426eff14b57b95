// The client's TLS on an NIOPosix channel: BoringSSL through NIOSSL (Linux, or any platform given
// a MultiThreadedEventLoopGroup).

import NIOCore
import NIOSSL
import Synchronization

/// The `NIOSSLContext` of one ``RelayTLS`` value, built on first use: building it loads the trust
/// roots, which costs far more than a handshake.
final class NIOSSLContextCache: Sendable {
    private let context = Mutex<NIOSSLContext?>(nil)

    func context(for trust: RelayTLS.Trust) throws -> NIOSSLContext {
        try context.withLock { cached in
            if let cached { return cached }
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            switch trust {
            case .systemRoots:
                break
            case .certificateAuthorities(let certificates):
                do {
                    configuration.trustRoots = .certificates(try certificates.map { try NIOSSLCertificate(bytes: $0, format: .der) })
                } catch {
                    throw RelayClientError.invalidTLSConfiguration("a CA certificate does not parse: \(error)")
                }
            case .pinnedCertificate:
                // The peer must present a certificate; the pin callback replaces chain and name checks.
                configuration.certificateVerification = .noHostnameVerification
            }
            let made = try NIOSSLContext(configuration: configuration)
            cached = made
            return made
        }
    }
}

extension RelayTLS {
    /// The client handler for a connection to `host`: SNI with a host name (never an IP literal,
    /// RFC 6066 §3); the certificate checked as ``trust`` says.
    func makeNIOSSLHandler(host: String) throws -> NIOSSLClientHandler {
        let context = try cache.context(for: trust)
        let serverName = host.isIPLiteral ? nil : host
        guard case .pinnedCertificate(let pin) = trust else {
            return try NIOSSLClientHandler(context: context, serverHostname: serverName)
        }
        return try NIOSSLClientHandler(context: context, serverHostname: serverName) { certificates, promise in
            let leaf = certificates.first.flatMap { try? $0.toDERBytes() }
            promise.succeed(leaf.map { RelayTLS.matchesPin($0, pin) } == true ? .certificateVerified : .failed)
        }
    }
}

extension String {
    /// Whether this is an IPv4 or IPv6 literal (brackets already removed).
    var isIPLiteral: Bool {
        if contains(":") { return true }
        let parts = split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }
}

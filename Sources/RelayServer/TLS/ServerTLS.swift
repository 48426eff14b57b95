// The relay's own TLS: a context built from the PEM files, swapped whole on reload.

import Foundation
import Metrics
import NIOSSL
import Synchronization

/// The TLS context new connections get. ``reload()`` reads the files again and swaps the context
/// in one step: connections already open keep the one they were accepted with (a TLS session
/// cannot change its certificate), new ones get the new one. A reload that fails keeps the old
/// context, so a half-written certificate never takes the listener down.
final class ServerTLS: Sendable {
    let files: ServerTLSFiles
    private let context: Mutex<NIOSSLContext>
    private let expiry: Gauge
    private let reloads: (succeeded: Counter, failed: Counter)

    /// Reads the files; throws a ``ConfigurationError`` naming the file that cannot be used.
    init(files: ServerTLSFiles) throws(ConfigurationError) {
        self.files = files
        self.expiry = Gauge(label: "relay_tls_certificate_expiry_timestamp_seconds")
        self.reloads = (
            Counter(label: "relay_tls_reloads_total", dimensions: [("outcome", "success")]),
            Counter(label: "relay_tls_reloads_total", dimensions: [("outcome", "failure")])
        )
        let (context, notAfter) = try Self.load(files)
        self.context = Mutex(context)
        expiry.record(notAfter)
    }

    /// The server handler for a new connection.
    func makeHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: context.withLock { $0 })
    }

    /// Reads the files again; on success new connections use them, and the new certificate's
    /// expiry is returned. Throws (and changes nothing) when they cannot be used.
    func reload() throws(ConfigurationError) -> Date {
        do {
            let (context, notAfter) = try Self.load(files)
            self.context.withLock { $0 = context }
            expiry.record(notAfter)
            reloads.succeeded.increment()
            return Date(timeIntervalSince1970: TimeInterval(notAfter))
        } catch {
            reloads.failed.increment()
            throw error
        }
    }

    /// A context from the files, and the leaf certificate's expiry (seconds since 1970).
    private static func load(_ files: ServerTLSFiles) throws(ConfigurationError) -> (NIOSSLContext, Int) {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificateFile)
        } catch {
            throw ConfigurationError("TLS_CERT_FILE \(files.certificateFile) cannot be used: \(error)")
        }
        guard let leaf = chain.first else {
            throw ConfigurationError("TLS_CERT_FILE \(files.certificateFile) holds no PEM certificate.")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: files.keyFile, format: .pem)
        } catch {
            // The error names the file, never the key's bytes.
            throw ConfigurationError("TLS_KEY_FILE \(files.keyFile) cannot be used: \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            return (try NIOSSLContext(configuration: configuration), Int(leaf.notValidAfter))
        } catch {
            throw ConfigurationError("TLS_CERT_FILE and TLS_KEY_FILE do not make a TLS context (does the key match the certificate?): \(error)")
        }
    }
}

// Where the relay's own certificate and key live (TLS_CERT_FILE, TLS_KEY_FILE).

/// The PEM files the relay serves TLS with.
public struct ServerTLSFiles: Sendable, Equatable {
    /// `TLS_CERT_FILE`: the certificate, then any intermediates.
    public var certificateFile: String
    /// `TLS_KEY_FILE`: the certificate's private key.
    public var keyFile: String

    public init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

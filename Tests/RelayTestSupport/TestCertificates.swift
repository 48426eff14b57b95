// Certificates made at test time with the openssl command: a CA and the server certificates it signs.

import Foundation
import RelayLocalCluster

/// A directory of PEM files made by `openssl` for one test: a CA, and certificates for
/// 127.0.0.1 and `localhost` it signs. Removed by ``remove()``.
package struct TestCertificates: Sendable {
    /// The directory holding the files.
    package let directory: String

    /// The CA certificate (`ca.crt`).
    package var caFile: String { "\(directory)/ca.crt" }

    /// Makes a new directory with a CA in it.
    package static func make(caName: String = "relay test CA") async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("relay-certs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        try await certificates.openssl([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=\(caName)",
            "-keyout", "\(directory)/ca.key", "-out", "\(directory)/ca.crt",
        ])
        return certificates
    }

    /// A server certificate for 127.0.0.1 and `localhost`, signed by the CA: returns its
    /// certificate and key files (`<name>.crt`, `<name>.key`).
    package func makeServerCertificate(named name: String = "server") async throws -> (certificate: String, key: String) {
        let certificate = "\(directory)/\(name).crt", key = "\(directory)/\(name).key", request = "\(directory)/\(name).csr"
        try await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", request])
        let extensions = "\(directory)/\(name).ext"
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: extensions, atomically: true, encoding: .utf8)
        try await openssl([
            "x509", "-req", "-in", request, "-CA", caFile, "-CAkey", "\(directory)/ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", extensions, "-out", certificate,
        ])
        return (certificate, key)
    }

    /// The SHA-256 fingerprint of a PEM certificate file's DER, as `openssl x509 -fingerprint` prints it.
    package func fingerprint(of certificateFile: String) async throws -> String {
        let output = try await openssl(["x509", "-noout", "-fingerprint", "-sha256", "-in", certificateFile])
        guard let equals = output.firstIndex(of: "=") else { throw TestFailure("no fingerprint in \(output)") }
        return output[output.index(after: equals)...].trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Deletes the directory.
    package func remove() { try? FileManager.default.removeItem(atPath: directory) }

    /// Runs openssl with `arguments`; its standard output, or a failure with its standard error.
    @discardableResult
    private func openssl(_ arguments: [String]) async throws -> String {
        let process = try ChildProcess.launch(
            executable: try LocalDependencyServer.findExecutable("openssl"), arguments: arguments, environment: nil)
        let status = try await process.waitForExit(timeout: .seconds(60))
        guard status == 0 else {
            throw TestFailure("openssl \(arguments.joined(separator: " ")) exited \(status): \(process.standardError.suffix(800))")
        }
        return process.standardOutput
    }
}

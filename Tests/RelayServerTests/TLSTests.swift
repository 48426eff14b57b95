import Foundation
import RelayLocalCluster
import RelayTestClient
import RelayTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The relay serving TLS itself (`TLS_CERT_FILE`, `TLS_KEY_FILE`) and the client library over
/// `https://` and `wss://`, with certificates made by openssl for this run.
@Suite("TLS", .serialized, .timeLimit(.minutes(3)))
struct TLSTests {
    /// A relay process serving TLS with `certificate` and `key`, its clients trusting `trust`.
    static func launchRelay(certificate: String, key: String, trust: RelayTLS) async throws -> LocalRelayNode {
        let node = try LocalRelayNode.launch(
            port: try freeLoopbackPort(), environment: ["TLS_CERT_FILE": certificate, "TLS_KEY_FILE": key, "LOG_LEVEL": "info"],
            clientTLS: trust)
        do {
            try await node.waitUntilHealthy(timeout: .seconds(30))
        } catch {
            try? await node.kill()
            throw error
        }
        return node
    }

    @Test func aPhoneAndADesktopPairAndTalkOverHTTPSAndWSS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let (certificate, key) = try await certificates.makeServerCertificate()
        let trust = try RelayTLS.certificateAuthorities(pemFile: certificates.caFile)
        let node = try await Self.launchRelay(certificate: certificate, key: key, trust: trust)
        defer { node.process.terminateIfRunning() }
        #expect(node.baseURL.hasPrefix("https://"))

        let pair = try await LibraryPair.make(relayURL: node.baseURL, configuration: LibraryPair.configuration(tls: trust))
        // The join answered with the relay's own wss:// URL, and the phone connected there.
        #expect(pair.phone.credentials?.wsURL == "wss://127.0.0.1:\(node.port)/ws")
        try await pair.exchangeTraffic("over TLS")
        let devices = try await pair.desktop.listDevices()
        #expect(devices.map(\.deviceName) == ["Ana's iPhone"])
        await pair.close()
        #expect(await pair.phoneRun.value == .closed)
    }

    @Test func aCertificateFromAnotherCAIsRefusedWithAClearError() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let other = try await TestCertificates.make(caName: "someone else's CA")
        defer { other.remove() }
        let (certificate, key) = try await certificates.makeServerCertificate()
        let node = try await Self.launchRelay(
            certificate: certificate, key: key, trust: try RelayTLS.certificateAuthorities(pemFile: certificates.caFile))
        defer { node.process.terminateIfRunning() }

        // The wrong CA: the desktop's first call fails in the handshake, and says so.
        let wrongCA = RelayDesktopClient(
            relayURL: node.baseURL, identity: .generate(),
            configuration: LibraryPair.configuration(tls: try .certificateAuthorities(pemFile: other.caFile)))
        do {
            _ = try await wrongCA.startPairing()
            Issue.record("a relay whose certificate another CA signed was trusted")
        } catch let error as RelayClientError {
            guard case .tlsFailed(let host, let reason) = error else { throw error }
            #expect(host == "127.0.0.1:\(node.port)")
            #expect(reason.contains("not trusted"), "\(reason)")
        }
        // The system roots do not know the test CA either.
        let systemTrust = RelayDesktopClient(relayURL: node.baseURL, identity: .generate(), configuration: LibraryPair.configuration())
        await #expect(throws: RelayClientError.self) { _ = try await systemTrust.startPairing() }

        // A pin of another certificate is refused; the pin of the relay's own is accepted, with
        // no CA at all.
        let (otherCertificate, _) = try await other.makeServerCertificate()
        let wrongPin = RelayDesktopClient(
            relayURL: node.baseURL, identity: .generate(),
            configuration: LibraryPair.configuration(tls: try .pinnedCertificate(sha256: try await other.fingerprint(of: otherCertificate))))
        await #expect(throws: RelayClientError.self) { _ = try await wrongPin.startPairing() }
        let rightPin = RelayDesktopClient(
            relayURL: node.baseURL, identity: .generate(),
            configuration: LibraryPair.configuration(tls: try .pinnedCertificate(sha256: try await certificates.fingerprint(of: certificate))))
        let link = try await rightPin.startPairing()
        #expect(link.relayBaseURL == node.baseURL)

        // Plain HTTP to the TLS port gets no answer it could mistake for the relay's.
        let plain = RelayHTTPClient(baseURL: "http://127.0.0.1:\(node.port)")
        let response = try? await plain.get("/healthz", timeout: .seconds(5))
        #expect(response?.status != 200)
    }

    @Test func sighupServesTheNewCertificateAndKeepsOpenSockets() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let first = try await certificates.makeServerCertificate(named: "first")
        let second = try await certificates.makeServerCertificate(named: "second")
        // The relay reads the files at these paths; a renewal replaces their contents.
        let live = (certificate: "\(certificates.directory)/live.crt", key: "\(certificates.directory)/live.key")
        try FileManager.default.copyItem(atPath: first.certificate, toPath: live.certificate)
        try FileManager.default.copyItem(atPath: first.key, toPath: live.key)
        let trust = try RelayTLS.certificateAuthorities(pemFile: certificates.caFile)
        let node = try await Self.launchRelay(certificate: live.certificate, key: live.key, trust: trust)
        defer { node.process.terminateIfRunning() }

        let pair = try await LibraryPair.make(relayURL: node.baseURL, configuration: LibraryPair.configuration(tls: trust))
        let firstPin = try RelayTLS.pinnedCertificate(sha256: try await certificates.fingerprint(of: first.certificate))
        let secondPin = try RelayTLS.pinnedCertificate(sha256: try await certificates.fingerprint(of: second.certificate))
        #expect(try await RelayHTTPClient(baseURL: node.baseURL, tls: firstPin).get("/healthz").status == 200)

        // Renew: new files in place, then SIGHUP.
        for (from, to) in [(second.certificate, live.certificate), (second.key, live.key)] {
            let staged = to + ".new"
            try FileManager.default.copyItem(atPath: from, toPath: staged)
            guard rename(staged, to) == 0 else { throw TestFailure("rename \(staged) failed") }
        }
        node.process.send(SIGHUP)

        // New connections get the new certificate once the reload is done…
        let reloaded = await eventually {
            (try? await RelayHTTPClient(baseURL: node.baseURL, tls: secondPin).get("/healthz", timeout: .seconds(5)))?.status == 200
        }
        #expect(reloaded, "the relay still serves the first certificate: \(node.logs.suffix(600))")
        await #expect(throws: RelayClientError.self) {
            _ = try await RelayHTTPClient(baseURL: node.baseURL, tls: firstPin).get("/healthz", timeout: .seconds(5))
        }
        #expect(node.logs.contains("tls_reloaded"))
        let metrics = try await node.http.get("/metricsz", headers: [("Accept", "text/plain")]).bodyText
        #expect(metrics.contains(#"relay_tls_reloads_total{outcome="success"} 1"#), "\(metrics)")

        // …and the sockets opened before it carry on, never dropped.
        try await pair.exchangeTraffic("after the reload")
        #expect(pair.phoneEvents.count { if case .disconnected = $0 { true } else { false } } == 0)
        #expect(pair.desktopEvents.count { if case .disconnected = $0 { true } else { false } } == 0)

        // A renewal that is not a certificate keeps the one in use.
        try "not a certificate".write(toFile: live.certificate, atomically: true, encoding: .utf8)
        node.process.send(SIGHUP)
        #expect(await eventually { node.logs.contains("tls_reload_failed") })
        #expect(try await RelayHTTPClient(baseURL: node.baseURL, tls: secondPin).get("/healthz").status == 200)
        await pair.close()
    }

    @Test func halfATLSConfigurationOrAnUnreadableFileStopsTheStart() async throws {
        let onlyCertificate = try RelayProcess.launch(environment: ["PORT": "0", "HOST": "127.0.0.1", "TLS_CERT_FILE": "/nonexistent.crt"])
        #expect(try await onlyCertificate.waitForExit(timeout: .seconds(30)) == 2)
        #expect(onlyCertificate.standardError.contains("TLS_CERT_FILE is set without TLS_KEY_FILE"))

        let missing = try RelayProcess.launch(
            environment: ["PORT": "0", "HOST": "127.0.0.1", "TLS_CERT_FILE": "/nonexistent.crt", "TLS_KEY_FILE": "/nonexistent.key"])
        #expect(try await missing.waitForExit(timeout: .seconds(30)) == 2)
        #expect(missing.standardError.contains("TLS_CERT_FILE /nonexistent.crt cannot be used"), "\(missing.standardError)")
    }
}

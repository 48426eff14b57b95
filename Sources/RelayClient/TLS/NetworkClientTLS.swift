// The client's TLS on Apple platforms: Network.framework through NIOTransportServices, with the
// same trust choices as NIOSSL.

#if canImport(Network)
import Foundation
import Network
import Security

extension RelayTLS {
    /// Network.framework TLS options that check the relay's certificate as ``trust`` says.
    func networkOptions() -> NWProtocolTLS.Options {
        let options = NWProtocolTLS.Options()
        sec_protocol_options_set_min_tls_protocol_version(options.securityProtocolOptions, .TLSv12)
        let trust = self.trust
        guard trust != .systemRoots else { return options }
        let queue = DispatchQueue(label: "relay.tls.verify")
        sec_protocol_options_set_verify_block(
            options.securityProtocolOptions,
            { _, secTrust, complete in
                let serverTrust = sec_trust_copy_ref(secTrust).takeRetainedValue()
                switch trust {
                case .systemRoots:
                    complete(true)
                case .certificateAuthorities(let certificates):
                    let anchors = certificates.compactMap { SecCertificateCreateWithData(nil, Data($0) as CFData) }
                    SecTrustSetAnchorCertificates(serverTrust, anchors as CFArray)
                    SecTrustSetAnchorCertificatesOnly(serverTrust, true)
                    SecTrustEvaluateAsyncWithError(serverTrust, queue) { _, trusted, _ in complete(trusted) }
                case .pinnedCertificate(let pin):
                    let chain = (SecTrustCopyCertificateChain(serverTrust) as? [SecCertificate]) ?? []
                    let leaf = chain.first.map { Array(SecCertificateCopyData($0) as Data) }
                    complete(leaf.map { RelayTLS.matchesPin($0, pin) } == true)
                }
            },
            queue
        )
        return options
    }
}
#endif

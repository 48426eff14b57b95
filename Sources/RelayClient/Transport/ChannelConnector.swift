// One way to open a client channel, plain or TLS, on whichever event loops the caller runs.

import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
#if canImport(Network)
import Network
import NIOTransportServices
#endif

/// Opens the TCP connection of an HTTP request or a WebSocket, with TLS for a secure endpoint.
///
/// On an `NIOTSEventLoopGroup` (Apple platforms) the connection and its TLS are Network.framework's;
/// on any other group they are NIOPosix's and NIOSSL's. `connect` returns once TLS, if any, is
/// established, so a certificate the client does not trust fails here with
/// ``RelayClientError/tlsFailed(host:reason:)`` instead of as a closed connection later.
package enum ChannelConnector {
    /// The event loop group a client uses unless told otherwise: Network.framework's where it
    /// exists, NIOPosix's shared one elsewhere.
    package static var defaultGroup: any EventLoopGroup {
        #if canImport(Network)
        NIOTSEventLoopGroup.singleton
        #else
        MultiThreadedEventLoopGroup.singleton
        #endif
    }

    /// Connects to `endpoint`, runs `initializer` on the new channel (after the TLS handler) and
    /// returns what it made once the connection, and TLS, are up.
    ///
    /// - Parameters:
    ///   - receiveBufferSize: `SO_RCVBUF` to request (NIOPosix only; tests of slow readers use it).
    static func connect<Output: Sendable>(
        to endpoint: RelayEndpoint,
        tls: RelayTLS,
        group: any EventLoopGroup,
        timeout: Duration,
        receiveBufferSize: Int? = nil,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>
    ) async throws -> Output {
        #if canImport(Network)
        if let bootstrap = NIOTSConnectionBootstrap(validatingGroup: group) {
            let tcp = NWProtocolTCP.Options()
            tcp.noDelay = true
            var configured = bootstrap.connectTimeout(TimeAmount(timeout)).tcpOptions(tcp)
            if endpoint.isSecure { configured = configured.tlsOptions(tls.networkOptions()) }
            do {
                return try await configured.connect(host: endpoint.host, port: endpoint.port, channelInitializer: initializer)
            } catch let error as NWError {
                if case .tls = error { throw RelayClientError.tlsFailed(host: endpoint.authority, reason: "\(error)") }
                throw error
            }
        }
        #endif
        var bootstrap = ClientBootstrap(group: group.next())
            .connectTimeout(TimeAmount(timeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        if let receiveBufferSize {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBufferSize))
        }
        let (output, handshake) = try await bootstrap.connect(host: endpoint.host, port: endpoint.port) { channel in
            guard endpoint.isSecure else {
                return initializer(channel).map { ($0, Optional<EventLoopFuture<Void>>.none) }
            }
            let handshake = channel.eventLoop.makePromise(of: Void.self)
            do {
                try channel.pipeline.syncOperations.addHandler(try tls.makeNIOSSLHandler(host: endpoint.host))
                try channel.pipeline.syncOperations.addHandler(TLSHandshakeWatcher(promise: handshake, authority: endpoint.authority))
            } catch {
                handshake.fail(error)
                return channel.eventLoop.makeFailedFuture(error)
            }
            return initializer(channel).map { ($0, Optional(handshake.futureResult)) }
        }
        try await handshake?.get()
        return output
    }
}

/// Completes a promise when the TLS handshake does: with success, or with a
/// ``RelayClientError/tlsFailed(host:reason:)`` that says why (an untrusted certificate names the
/// trust setting to check). Sits right behind the NIOSSL handler; passes everything on.
final class TLSHandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let promise: EventLoopPromise<Void>
    private let authority: String

    init(promise: EventLoopPromise<Void>, authority: String) {
        self.promise = promise
        self.authority = authority
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { promise.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(RelayClientError.tlsFailed(host: authority, reason: Self.reason(error)))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(RelayClientError.tlsFailed(host: authority, reason: "the connection closed during the handshake"))
        context.fireChannelInactive()
    }

    /// A channel that never became active (a refused connect) ends here; a completed promise
    /// ignores this.
    func handlerRemoved(context: ChannelHandlerContext) {
        promise.fail(RelayClientError.tlsFailed(host: authority, reason: "the connection ended before the handshake"))
    }

    /// A sentence for an NIOSSL failure; a verification failure says what to check.
    static func reason(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed") {
            return "the relay's certificate is not trusted by this client's TLS setting (a wrong CA file or pin?): \(text)"
        }
        return text
    }
}

import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import RelayCore

/// The server's child channel: plain HTTP/1.1 through Hummingbird's responder, and `GET /ws`
/// upgraded straight onto our own NIO handler. The WebSocket side is SwiftNIO rather than
/// HummingbirdWebSocket because the relay needs what that layer hides: inbound Pings and Pongs
/// (heartbeat credit), a non-blocking bounded outbound queue with a slow-consumer verdict, and
/// the close code of every termination.
struct RelayChildChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case websocket(EventLoopFuture<Void>)
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case failedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let settings: WebSocketSettings
    let trustedProxyHops: Int
    let allowLegacyQueryToken: Bool

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let upgradeAttempted = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let settings = self.settings
            let hops = self.trustedProxyHops
            let legacy = self.allowLegacyQueryToken
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: settings.maxMessageBytes,
                enableAutomaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    upgradeAttempted.value = true
                    let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
                    return channel.eventLoop.makeSucceededFuture(path == "/ws" ? HTTPHeaders() : nil)
                },
                upgradePipelineHandler: { channel, head in
                    channel.eventLoop.makeCompletedFuture {
                        let peer = SocketPeer(
                            remoteIP: ClientAddress.resolve(
                                peer: channel.remoteAddress, forwardedFor: head.headers["X-Forwarded-For"], trustedHops: hops),
                            origin: head.headers.first(name: "Origin"),
                            userAgent: head.headers.first(name: "User-Agent"))
                        let token = legacy ? Self.queryToken(head.uri) : nil
                        try channel.pipeline.syncOperations.addHandler(
                            WebSocketHandler(settings: settings, peer: peer, legacyToken: token, channel: channel))
                        return UpgradeResult.websocket(channel.closeFuture)
                    }
                }
            )
            let serverUpgrade = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        return upgradeAttempted.value ? UpgradeResult.failedUpgrade(asyncChannel) : .notUpgraded(asyncChannel)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: serverUpgrade)
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .notUpgraded(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .failedUpgrade(let http):
                try await http.executeThenClose { _, outbound in
                    try await outbound.write(contentsOf: [
                        .head(HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])),
                        .end(nil),
                    ])
                }
            case .websocket(let closed):
                try await closed.get()
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// The percent-decoded `token` query parameter of a legacy `/ws?token=` upgrade.
    static func queryToken(_ uri: String) -> String? {
        guard let query = uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.first == "token", parts.count == 2 else { continue }
            return String(parts[1]).removingPercentEncoding()
        }
        return nil
    }
}

extension String {
    func removingPercentEncoding() -> String? {
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let c = iterator.next() {
            if c == UInt8(ascii: "%") {
                guard let h = iterator.next(), let l = iterator.next(),
                    let v = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(v)
            } else {
                bytes.append(c == UInt8(ascii: "+") ? UInt8(ascii: " ") : c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

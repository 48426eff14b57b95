// A local OTLP/HTTP collector for tests: accepts trace exports and keeps their spans.

import NIOCore
import NIOHTTP1
import NIOPosix
import RelayProtocol
import Synchronization

/// One span as an OTLP/HTTP JSON export carries it.
struct ReceivedSpan: Sendable {
    let traceID: String
    let spanID: String
    let parentSpanID: String
    let name: String
    let serviceName: String
    let attributes: [String: String]
}

/// An OTLP/HTTP receiver on 127.0.0.1: answers every `POST /v1/traces` with 200 and keeps the
/// spans of JSON exports (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) and every raw body.
final class OTLPReceiver: Sendable {
    private let channel: any Channel
    private let received = Mutex<(spans: [ReceivedSpan], bodies: [String], paths: [String])>(([], [], []))

    /// The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    let baseURL: String

    private init(channel: any Channel, port: Int) {
        self.channel = channel
        self.baseURL = "http://127.0.0.1:\(port)"
    }

    static func start() async throws -> OTLPReceiver {
        let box = Mutex<OTLPReceiver?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.configureHTTPServerPipeline()
                    try child.pipeline.syncOperations.addHandler(ExportHandler { path, body in box.withLock { $0 }?.record(path: path, body: body) })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let receiver = OTLPReceiver(channel: channel, port: channel.localAddress?.port ?? 0)
        box.withLock { $0 = receiver }
        return receiver
    }

    func stop() async {
        try? await channel.close()
    }

    var spans: [ReceivedSpan] { received.withLock { $0.spans } }
    var bodies: [String] { received.withLock { $0.bodies } }
    var paths: [String] { received.withLock { $0.paths } }

    private func record(path: String, body: [UInt8]) {
        let spans = Self.spans(in: body)
        received.withLock { r in
            r.paths.append(path)
            r.bodies.append(String(decoding: body, as: UTF8.self))
            r.spans.append(contentsOf: spans)
        }
    }

    /// `resourceSpans[].scopeSpans[].spans[]` of an `ExportTraceServiceRequest` in JSON.
    static func spans(in body: [UInt8]) -> [ReceivedSpan] {
        guard let request = try? JSONValue.parse(body), let resources = request["resourceSpans"]?.arrayValue else { return [] }
        var result: [ReceivedSpan] = []
        for resource in resources {
            let service = attributes(resource["resource"]?["attributes"])["service.name"] ?? ""
            for scope in resource["scopeSpans"]?.arrayValue ?? [] {
                for span in scope["spans"]?.arrayValue ?? [] {
                    result.append(ReceivedSpan(
                        traceID: span["traceId"]?.stringValue ?? "", spanID: span["spanId"]?.stringValue ?? "",
                        parentSpanID: span["parentSpanId"]?.stringValue ?? "", name: span["name"]?.stringValue ?? "",
                        serviceName: service, attributes: attributes(span["attributes"])))
                }
            }
        }
        return result
    }

    private static func attributes(_ list: JSONValue?) -> [String: String] {
        var result: [String: String] = [:]
        for entry in list?.arrayValue ?? [] {
            guard let key = entry["key"]?.stringValue, let value = entry["value"] else { continue }
            if let text = value["stringValue"]?.stringValue {
                result[key] = text
            } else if let number = value["intValue"] {
                result[key] = number.stringValue ?? number.serialized
            } else if let flag = value["boolValue"]?.boolValue {
                result[key] = flag ? "true" : "false"
            }
        }
        return result
    }
}

/// Collects one request's body, hands it on, and answers 200 with an empty JSON export response.
private final class ExportHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let onRequest: @Sendable (String, [UInt8]) -> Void
    private var path = ""
    private var body: [UInt8] = []

    init(onRequest: @escaping @Sendable (String, [UInt8]) -> Void) {
        self.onRequest = onRequest
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.uri
            body = []
        case .body(var buffer):
            body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
        case .end:
            onRequest(path, body)
            let reply = ByteBuffer(string: "{}")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(reply.readableBytes))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(reply))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

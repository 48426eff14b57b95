// HTTP/1.1 over SwiftNIO, plain or TLS: one fresh connection per request, the whole response buffered.

import NIOCore
import NIOHTTP1
import NIOPosix
import RelayProtocol

/// An HTTP request for ``RelayHTTPClient``.
package struct RelayHTTPRequest: Sendable {
    /// The method, e.g. `GET`, `POST`, `OPTIONS`.
    package var method: String
    /// The path relative to the client's base URL, including any query (`/pair/start`).
    package var path: String
    /// Header lines in order. `Host`, `Connection: close` and `Content-Length` are added when absent.
    package var headers: [(String, String)]
    /// The body, or `nil` for none.
    package var body: [UInt8]?
    /// Deadline for connecting, sending and reading the full response (`/pair/join` long-polls 45 s).
    package var timeout: Duration

    /// Creates a request.
    package init(
        method: String = "GET",
        path: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration = .seconds(60)
    ) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// A complete HTTP response.
package struct RelayHTTPResponse: Sendable {
    /// The status code.
    package let status: Int
    /// Header lines in the order received (repeated names stay separate, e.g. several `Vary`).
    package let headers: [(String, String)]
    /// The body bytes (de-chunked).
    package let body: [UInt8]

    /// Creates a response value.
    package init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body decoded as UTF-8 (invalid sequences replaced).
    package var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The first value of the header `name`, compared case-insensitively.
    package func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.0.lowercased() == lowered }?.1
    }

    /// Every value of the header `name`, compared case-insensitively, in order.
    package func headerValues(_ name: String) -> [String] {
        let lowered = name.lowercased()
        return headers.filter { $0.0.lowercased() == lowered }.map(\.1)
    }

    /// The body parsed as JSON.
    ///
    /// - Throws: ``RelayClientError/invalidJSON(reason:text:)`` when it does not parse.
    package func json() throws -> JSONValue { try parseJSON(body) }

    /// The `error` member of a JSON error body (`{"error":"<code>","message":…}`), if any.
    package var errorCode: String? { (try? json())?["error"]?.stringValue }

    /// The `message` member of a JSON error body, if any.
    package var errorMessage: String? { (try? json())?["message"]?.stringValue }

    /// The JSON body of a 200.
    ///
    /// - Throws: ``RelayClientError/requestRefused(operation:status:code:message:)`` for any
    ///   other status, ``RelayClientError/invalidJSON(reason:text:)`` for a body that is no JSON.
    package func requireSuccess(operation: String) throws -> JSONValue {
        guard status == 200 else {
            throw RelayClientError.requestRefused(operation: operation, status: status, code: errorCode, message: errorMessage)
        }
        return try json()
    }
}

/// A minimal HTTP/1.1 client for the relay's API over `http://` or `https://`.
///
/// Each request opens a new connection, sends `Connection: close`, and reads the full response
/// (framed by `Content-Length`, chunked encoding, or the end of the connection). It is a value type
/// and cheap to copy; all connections share the given event loop group.
package struct RelayHTTPClient: Sendable {
    /// The base URL requests are relative to, e.g. `http://127.0.0.1:8080`.
    package let baseURL: String
    /// The event loop group connections run on.
    package let eventLoopGroup: any EventLoopGroup
    /// How an `https://` relay's certificate is checked.
    package let tls: RelayTLS
    private let endpoint: Result<RelayEndpoint, RelayClientError>

    /// Creates a client. A base URL that is not `http://` or `https://` makes every request throw
    /// ``RelayClientError/unsupportedScheme(_:)``.
    package init(baseURL: String, tls: RelayTLS = .system, eventLoopGroup: any EventLoopGroup = ChannelConnector.defaultGroup) {
        self.baseURL = baseURL
        self.tls = tls
        self.eventLoopGroup = eventLoopGroup
        self.endpoint = Result { () throws(RelayClientError) in try RelayEndpoint.parse(baseURL, kind: .http) }
    }

    /// Sends `request` and returns the full response, whatever its status.
    ///
    /// - Throws: ``RelayClientError/timedOut(_:)`` past `request.timeout`,
    ///   ``RelayClientError/connectionClosed(_:)`` if the server hangs up mid-response, connection
    ///   errors from NIO, or `CancellationError` when the task is cancelled.
    package func send(_ request: RelayHTTPRequest) async throws -> RelayHTTPResponse {
        let endpoint = try self.endpoint.get()
        let deadline = NIODeadline.now() + TimeAmount(request.timeout)
        let head = Self.makeHead(request, endpoint: endpoint)
        let body = request.body
        let description = "\(request.method) \(request.path)"

        let eventLoop = eventLoopGroup.next()
        let promise = eventLoop.makePromise(of: RelayHTTPResponse.self)
        let timer = eventLoop.scheduleTask(deadline: deadline) {
            promise.fail(RelayClientError.timedOut("\(description) after \(request.timeout)"))
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }

        let channel: any Channel
        do {
            channel = try await ChannelConnector.connect(
                to: endpoint, tls: tls, group: eventLoop, timeout: request.timeout
            ) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(HTTPResponseCollector(promise: promise, operation: description))
                    return channel
                }
            }
        } catch {
            promise.fail(error)
            throw error
        }
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }

        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body, !body.isEmpty {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        }
        // A failed write is not the outcome: the server may already have answered (an early 413, say).
        // The connection then ends and the collector reports a complete response or the hang-up.
        channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { _ in channel.close(promise: nil) }

        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            promise.fail(CancellationError())
        }
    }

    /// `GET path`.
    package func get(_ path: String, headers: [(String, String)] = [], timeout: Duration = .seconds(60)) async throws -> RelayHTTPResponse {
        try await send(RelayHTTPRequest(method: "GET", path: path, headers: headers, timeout: timeout))
    }

    /// `POST path` with `body` serialized compactly and `Content-Type: application/json`
    /// (unless `headers` sets a `Content-Type`).
    package func postJSON(
        path: String,
        body: JSONValue,
        headers: [(String, String)] = [],
        timeout: Duration = .seconds(60)
    ) async throws -> RelayHTTPResponse {
        try await postJSON(path: path, rawBody: body.serialized, headers: headers, timeout: timeout)
    }

    /// `POST path` with a pre-encoded body (sent verbatim, so it may be invalid JSON on purpose) and
    /// `Content-Type: application/json` unless `headers` sets a `Content-Type`.
    package func postJSON(
        path: String,
        rawBody: String,
        headers: [(String, String)] = [],
        timeout: Duration = .seconds(60)
    ) async throws -> RelayHTTPResponse {
        var allHeaders = headers
        if !headers.contains(where: { $0.0.lowercased() == "content-type" }) {
            allHeaders.append(("Content-Type", "application/json"))
        }
        return try await send(
            RelayHTTPRequest(method: "POST", path: path, headers: allHeaders, body: Array(rawBody.utf8), timeout: timeout)
        )
    }

    private static func makeHead(_ request: RelayHTTPRequest, endpoint: RelayEndpoint) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        let names = Set(request.headers.map { $0.0.lowercased() })
        if !names.contains("host") { headers.add(name: "Host", value: endpoint.hostHeader) }
        for (name, value) in request.headers { headers.add(name: name, value: value) }
        if !names.contains("connection") { headers.add(name: "Connection", value: "close") }
        if !names.contains("content-length"), !names.contains("transfer-encoding"),
            request.body != nil || request.method.uppercased() == "POST"
        {
            headers.add(name: "Content-Length", value: String(request.body?.count ?? 0))
        }
        let path = request.path.hasPrefix("/") ? request.path : "/" + request.path
        return HTTPRequestHead(
            version: .http1_1,
            method: HTTPMethod(rawValue: request.method),
            uri: endpoint.basePath + path,
            headers: headers
        )
    }
}

/// Collects one HTTP response into a promise; fails it if the connection ends first.
///
/// Lives on its channel's event loop only (NIO handlers are not `Sendable`).
final class HTTPResponseCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<RelayHTTPResponse>
    private let operation: String
    private var head: HTTPResponseHead?
    private var body: ByteBuffer?

    init(promise: EventLoopPromise<RelayHTTPResponse>, operation: String) {
        self.promise = promise
        self.operation = operation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(var part):
            if body == nil {
                body = part
            } else {
                body!.writeBuffer(&part)
            }
        case .end:
            guard let head else {
                promise.fail(RelayClientError.protocolViolation("HTTP response end without head"))
                return
            }
            let bytes = body.map { Array($0.readableBytesView) } ?? []
            let headers = head.headers.map { ($0.name, $0.value) }
            promise.succeed(RelayHTTPResponse(status: Int(head.status.code), headers: headers, body: bytes))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(RelayClientError.connectionClosed("\(operation): before the full response arrived"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

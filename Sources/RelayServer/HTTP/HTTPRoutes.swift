import HTTPTypes
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import RelayCore
import RelayProtocol

/// Every HTTP route of PROTOCOL §2 and §7, plus `/livez` and `/readyz`, in one small router whose
/// 404/405/OPTIONS behaviour matches the reference byte for byte.
struct HTTPRoutes: Sendable {
    let relay: Relay
    let configuration: RelayConfiguration
    let health: HealthState
    let metrics: MetricsExporter
    let logger: Logger

    private enum Route: String, CaseIterable {
        case healthz = "/healthz", livez = "/livez", readyz = "/readyz", metricsz = "/metricsz", ws = "/ws"
        case pairStart = "/pair/start", pairJoin = "/pair/join", pairRefresh = "/pair/refresh", pairStop = "/pair/stop"
        case devicesList = "/devices/list", devicesRevoke = "/devices/revoke"

        var isPost: Bool {
            switch self {
            case .healthz, .livez, .readyz, .metricsz, .ws: false
            default: true
            }
        }
    }


    /// Answers one request.
    func respond(to request: Request, channel: any Channel) async -> Response {
        let started = ContinuousClock.now
        let origin = request.headers[.origin].flatMap { $0.allSatisfy { $0.isASCII && !$0.isNewline } ? $0 : nil }
        let route = Route(rawValue: request.uri.path)
        var response: Response
        if request.method == .options {
            response = Response(status: .ok)
            response.headers[.accessControlAllowMethods] = "POST,OPTIONS"
            response.headers[.accessControlAllowHeaders] = "content-type"
        } else if let route {
            if route.isPost == (request.method == .post) || (route == .ws && request.method == .get) {
                response = await dispatch(route, request: request, channel: channel, origin: origin)
            } else {
                response = Response(status: .methodNotAllowed)
                response.headers[.allow] = route.isPost ? "POST" : "GET,HEAD"
            }
        } else {
            response = Response(status: .notFound)
        }
        if let allow = configuration.core.origins.corsAllowOrigin(for: origin) {
            response.headers[.accessControlAllowOrigin] = allow
        }
        response.headers.append(HTTPField(name: .vary, value: "origin"))
        response.headers.append(HTTPField(name: .vary, value: "access-control-request-method"))
        response.headers.append(HTTPField(name: .vary, value: "access-control-request-headers"))
        let label = route?.rawValue ?? "other"
        Counter(label: "relay_http_requests_total", dimensions: [("route", label), ("status", String(response.status.code))]).increment()
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        Metrics.Timer(label: "relay_http_request_duration_seconds", dimensions: [("route", label)], preferredDisplayUnit: .seconds)
            .recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        return response
    }

    private func dispatch(_ route: Route, request: Request, channel: any Channel, origin: String?) async -> Response {
        switch route {
        case .healthz:
            return json(metrics.healthJSON())
        case .livez:
            return json(Array(#"{"ok":true}"#.utf8))
        case .readyz:
            let (ready, body) = health.readiness()
            return json(body, status: ready ? .ok : .serviceUnavailable)
        case .metricsz:
            let accept = request.headers[.accept] ?? ""
            if accept.contains("text/plain") || accept.contains("application/openmetrics-text") {
                var response = Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: metrics.prometheusText())))
                response.headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
                return response
            }
            return json(metrics.metricsJSON())
        case .ws:
            return plain(.badRequest, "Expected a WebSocket upgrade request")
        default:
            var request = request
            let body: JSONValue
            switch await readJSONBody(&request) {
            case .json(let value): body = value
            case .rejected(let rejection): return rejection
            }
            let meta = RequestMeta(
                clientIP: ClientAddress.resolve(
                    peer: channel.remoteAddress, forwardedFor: request.headers[values: .xForwardedFor],
                    trustedHops: configuration.trustedProxyHops),
                origin: origin)
            do {
                return json(try await call(route, body: body, meta: meta))
            } catch let error as BodyShapeError {
                return plain(.unprocessableContent, "Failed to deserialize the JSON body into the target type: \(error)")
            } catch let error as APIError {
                return json(error.body, status: HTTPResponse.Status(code: error.status))
            } catch {
                logger.error("unexpected error", metadata: ["route": "\(route.rawValue)", "error": "\(error)"])
                return plain(.internalServerError, "Internal error")
            }
        }
    }

    private func call(_ route: Route, body: JSONValue, meta: RequestMeta) async throws -> [UInt8] {
        switch route {
        case .pairStart: try await relay.pairStart(PairStartRequest(json: body), meta: meta)
        case .pairJoin: try await relay.pairJoin(PairJoinRequest(json: body), meta: meta)
        case .pairRefresh: try await relay.pairRefresh(PairRefreshRequest(json: body), meta: meta)
        case .pairStop: try await relay.pairStop(DesktopCredentialsRequest(json: body), meta: meta)
        case .devicesList: try await relay.devicesList(DesktopCredentialsRequest(json: body), meta: meta)
        case .devicesRevoke: try await relay.devicesRevoke(DeviceRevokeRequest(json: body), meta: meta)
        default: []
        }
    }

    /// PROTOCOL §2.2, in table order: content type (415), size (413), syntax (400). Shape (422) is the caller's.
    private enum BodyOutcome {
        case json(JSONValue)
        case rejected(Response)
    }

    private func readJSONBody(_ request: inout Request) async -> BodyOutcome {
        guard Self.isJSONContentType(request.headers[.contentType]) else {
            return .rejected(plain(.unsupportedMediaType, "Expected request with `Content-Type: application/json`"))
        }
        let limit = configuration.maxJSONBytes
        let tooLarge = plain(.contentTooLarge, "Failed to buffer the request body: length limit exceeded")
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { return .rejected(tooLarge) }
        var buffer = ByteBuffer()
        do {
            for try await part in request.body {
                guard buffer.readableBytes + part.readableBytes <= limit else { return .rejected(tooLarge) }
                var part = part
                buffer.writeBuffer(&part)
            }
        } catch {
            return .rejected(plain(.badRequest, "Failed to read the request body"))
        }
        do {
            return .json(try JSONValue.parse(buffer.readableBytesView))
        } catch {
            return .rejected(plain(.badRequest, "Failed to parse the request body as JSON: \(error)"))
        }
    }

    static func isJSONContentType(_ value: String?) -> Bool {
        guard let value else { return false }
        let mime = value.split(separator: ";", maxSplits: 1).first.map { $0.trimmingASCIIWhitespace().lowercased() } ?? ""
        if mime == "application/json" { return true }
        return mime.hasPrefix("application/") && mime.hasSuffix("+json")
    }

    private func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        var response = Response(status: status, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        response.headers[.contentType] = "application/json"
        return response
    }

    private func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var response = Response(status: status, body: .init(byteBuffer: ByteBuffer(string: text)))
        response.headers[.contentType] = "text/plain; charset=utf-8"
        return response
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}

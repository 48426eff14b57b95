// Every HTTP route (PROTOCOL §2, §7, /livez, /readyz), answered as the reference relay does.

import Logging
import Metrics
import NIOCore
import NIOHTTP1
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
        case devicesList = "/devices/list", devicesRevoke = "/devices/revoke", devicesScope = "/devices/scope"

        var isPost: Bool {
            switch self {
            case .healthz, .livez, .readyz, .metricsz, .ws: false
            default: true
            }
        }
    }


    /// Answers one request. `HEAD` is answered as `GET` (the connection drops the body).
    func respond(to request: HTTPRequestMessage, remoteAddress: SocketAddress?) async -> HTTPRouteResponse {
        let started = monotonicNanoseconds()
        let origin = request.head.headers.first(name: "Origin").flatMap { $0.allSatisfy { $0.isASCII && !$0.isNewline } ? $0 : nil }
        let route = Route(rawValue: request.path)
        let method = request.head.method
        var response: HTTPRouteResponse
        if method == .OPTIONS {
            response = HTTPRouteResponse(status: .ok)
            response.headers.add(name: "Access-Control-Allow-Methods", value: "POST,OPTIONS")
            response.headers.add(name: "Access-Control-Allow-Headers", value: "content-type")
        } else if let route {
            let isGet = method == .GET || method == .HEAD
            if route.isPost ? method == .POST : isGet {
                response = await dispatch(route, request: request, remoteAddress: remoteAddress, origin: origin)
            } else {
                response = HTTPRouteResponse(status: .methodNotAllowed)
                response.headers.add(name: "Allow", value: route.isPost ? "POST" : "GET,HEAD")
            }
        } else {
            response = HTTPRouteResponse(status: .notFound)
        }
        if let allow = relay.origins.corsAllowOrigin(for: origin) {
            response.headers.add(name: "Access-Control-Allow-Origin", value: allow)
        }
        response.headers.add(name: "Vary", value: "origin")
        response.headers.add(name: "Vary", value: "access-control-request-method")
        response.headers.add(name: "Vary", value: "access-control-request-headers")
        let label = route?.rawValue ?? "other"
        Counter(label: "relay_http_requests_total", dimensions: [("route", label), ("status", String(response.status.code))]).increment()
        Metrics.Timer(label: "relay_http_request_duration_seconds", dimensions: [("route", label)], preferredDisplayUnit: .seconds)
            .recordNanoseconds(Int64(clamping: monotonicNanoseconds() &- started))
        return response
    }

    private func dispatch(_ route: Route, request: HTTPRequestMessage, remoteAddress: SocketAddress?, origin: String?) async -> HTTPRouteResponse {
        switch route {
        case .healthz:
            return json(metrics.healthJSON())
        case .livez:
            return json(Array(#"{"ok":true}"#.utf8))
        case .readyz:
            let (ready, body) = health.readiness()
            return json(body, status: ready ? .ok : .serviceUnavailable)
        case .metricsz:
            let accept = request.head.headers[canonicalForm: "Accept"].joined(separator: ",")
            if accept.contains("text/plain") || accept.contains("application/openmetrics-text") {
                var response = HTTPRouteResponse(status: .ok, body: ByteBuffer(bytes: metrics.prometheusText()))
                response.headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
                return response
            }
            return json(metrics.metricsJSON())
        case .ws:
            // A `GET /ws` the connection did not upgrade: no upgrade headers (PROTOCOL §4.1).
            return webSocketUpgradeExpected()
        default:
            let body: JSONValue
            switch readJSONBody(request) {
            case .json(let value): body = value
            case .rejected(let rejection): return rejection
            }
            let meta = RequestMeta(
                clientIP: ClientAddress.resolve(
                    peer: remoteAddress, forwardedFor: request.head.headers["X-Forwarded-For"],
                    trustedHops: configuration.trustedProxyHops),
                origin: origin, traceparent: request.head.headers["traceparent"].first)
            do {
                return json(try await call(route, body: body, meta: meta))
            } catch let error as BodyShapeError {
                return plain(.unprocessableEntity, "Failed to deserialize the JSON body into the target type: \(error)")
            } catch let error as APIError {
                return json(error.body, status: HTTPResponseStatus(statusCode: error.status))
            } catch {
                logger.error("unexpected_error", metadata: ["route": "\(route.rawValue)", "error": "\(error)"])
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
        case .devicesScope: try await relay.devicesScope(DeviceScopeRequest(json: body), meta: meta)
        default: []
        }
    }

    /// PROTOCOL §2.2, in table order: content type (415), size (413), syntax (400). Shape (422) is the caller's.
    private enum BodyOutcome {
        case json(JSONValue)
        case rejected(HTTPRouteResponse)
    }

    private func readJSONBody(_ request: HTTPRequestMessage) -> BodyOutcome {
        guard Self.isJSONContentType(request.head.headers.first(name: "Content-Type")) else {
            return .rejected(plain(.unsupportedMediaType, "Expected request with `Content-Type: application/json`"))
        }
        guard !request.bodyTooLarge, request.body.readableBytes <= configuration.maxJSONBytes else {
            return .rejected(plain(.payloadTooLarge, "Failed to buffer the request body: length limit exceeded"))
        }
        do {
            return .json(try JSONValue.parse(request.body.readableBytesView))
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

    private func json(_ bytes: [UInt8], status: HTTPResponseStatus = .ok) -> HTTPRouteResponse {
        var response = HTTPRouteResponse(status: status, body: ByteBuffer(bytes: bytes))
        response.headers.add(name: "Content-Type", value: "application/json")
        return response
    }

    /// 400 for `/ws` without a valid upgrade (PROTOCOL §4.1), naming the version we speak.
    func webSocketUpgradeExpected() -> HTTPRouteResponse {
        var response = plain(.badRequest, "Expected a WebSocket upgrade request")
        response.headers.add(name: "Sec-WebSocket-Version", value: "13")
        return response
    }

    func plain(_ status: HTTPResponseStatus, _ text: String) -> HTTPRouteResponse {
        var response = HTTPRouteResponse(status: status, body: ByteBuffer(string: text))
        response.headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        return response
    }
}

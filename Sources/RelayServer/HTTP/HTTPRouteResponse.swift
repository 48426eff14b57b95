// What a route answers: a status, headers and a whole body.

import NIOCore
import NIOHTTP1

/// What a route answers: status, headers and a whole body. The connection adds `Content-Length`,
/// `Date` and `Connection`.
struct HTTPRouteResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer

    init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

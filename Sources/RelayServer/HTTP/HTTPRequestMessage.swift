// One whole HTTP request as the routes see it: head, buffered body, and the target's path.

import NIOCore
import NIOHTTP1

/// One whole HTTP request as the routes see it: the head and the buffered body.
struct HTTPRequestMessage: Sendable {
    /// Method, target, version and headers as received.
    let head: HTTPRequestHead
    /// The body, at most `MAX_JSON_BYTES`.
    var body: ByteBuffer
    /// The body was over `MAX_JSON_BYTES` (by its `Content-Length` or as it arrived) and was not read.
    var bodyTooLarge: Bool

    /// The path of the request target: origin-form up to `?`, or the path of an absolute-form
    /// target (RFC 9112 §3.2.2), `*` for asterisk-form.
    var path: String { Self.path(of: head.uri) }

    static func path(of target: String) -> String {
        var rest = Substring(target)
        let lowered = target.prefix(8).lowercased()
        for scheme in ["http://", "https://"] where lowered.hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
            rest = rest.firstIndex(of: "/").map { rest[$0...] } ?? "/"
        }
        return String(rest.prefix { $0 != "?" && $0 != "#" })
    }
}

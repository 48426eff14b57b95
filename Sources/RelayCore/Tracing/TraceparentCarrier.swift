// Reads and writes a trace context as W3C Trace Context header fields held in a dictionary.

import Tracing

/// Carries a trace context as W3C Trace Context fields (`traceparent`, `tracestate`) in a
/// dictionary: what the tracer's propagator reads and writes.
struct TraceparentCarrier: Injector, Extractor {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }

    func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key]
    }

    /// Whether `text` may be a `traceparent` at all: short, lowercase hex and dashes. Anything
    /// else a client or another node sent is not handed to the propagator (which checks the rest).
    static func isPlausible(_ text: String) -> Bool {
        let utf8 = text.utf8
        guard utf8.count >= 55, utf8.count <= 128 else { return false }
        return utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
                || byte == UInt8(ascii: "-")
        }
    }
}

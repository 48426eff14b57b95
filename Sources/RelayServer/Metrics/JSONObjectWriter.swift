// A flat JSON object written key by key, in the order the reference relay's bodies have them.

import RelayProtocol

/// Writes a flat JSON object with keys in insertion order.
struct JSONObjectWriter {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]

    private mutating func key(_ name: String) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        appendJSONString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func int(_ name: String, _ value: Int) {
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func bool(_ name: String, _ value: Bool) {
        key(name)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    mutating func string(_ name: String, _ value: String) {
        key(name)
        appendJSONString(value, to: &bytes)
    }

    mutating func raw(_ name: String, _ json: String) {
        key(name)
        bytes.append(contentsOf: json.utf8)
    }

    mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}

// Ordered JSON for the harness's artifacts: release tooling diffs and reads them, and PROTOCOL §9
// fixes the key order.

import Foundation
import RelayTestClient

/// A JSON value whose object members keep the order they were added in, written as pretty JSON
/// with a two-space indent (the layout of the reference artifacts).
package enum ArtifactJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([ArtifactJSON])
    case object([(String, ArtifactJSON)])

    package static func == (lhs: ArtifactJSON, rhs: ArtifactJSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.double(let a), .double(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// `value` as an integer, or `null` when absent.
    package static func int(_ value: Int) -> ArtifactJSON { .int(Int64(value)) }
    /// `value` as an integer, or `null` when absent.
    package static func optionalInt(_ value: Int?) -> ArtifactJSON { value.map { .int(Int64($0)) } ?? .null }
    /// `value` rounded to `places` decimals, or `null` when absent or not finite.
    package static func number(_ value: Double?, places: Int = 3) -> ArtifactJSON {
        guard let value, value.isFinite else { return .null }
        let scale = pow(10, Double(places))
        return .double((value * scale).rounded() / scale)
    }
    /// `value` as a string, or `null` when absent.
    package static func string(_ value: String?) -> ArtifactJSON { value.map { .string($0) } ?? .null }

    /// The member named `key` of an object.
    package subscript(key: String) -> ArtifactJSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// Pretty JSON with a trailing newline.
    package var pretty: String {
        var out = ""
        write(into: &out, indent: 0)
        out.append("\n")
        return out
    }

    /// Writes `pretty` to `path`, creating parent directories.
    package func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(pretty.utf8).write(to: url, options: .atomic)
    }

    private func write(into out: inout String, indent: Int) {
        switch self {
        case .null: out.append("null")
        case .bool(let value): out.append(value ? "true" : "false")
        case .int(let value): out.append(String(value))
        case .double(let value):
            if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
                out.append(String(Int64(value)) + ".0")
            } else if value.isFinite {
                out.append("\(value)")
            } else {
                out.append("null")
            }
        case .string(let value): out.append(JSONValue.string(value).serialized)
        case .array(let elements):
            guard !elements.isEmpty else { return out.append("[]") }
            out.append("[\n")
            for (index, element) in elements.enumerated() {
                out.append(String(repeating: " ", count: indent + 2))
                element.write(into: &out, indent: indent + 2)
                out.append(index == elements.count - 1 ? "\n" : ",\n")
            }
            out.append(String(repeating: " ", count: indent) + "]")
        case .object(let members):
            guard !members.isEmpty else { return out.append("{}") }
            out.append("{\n")
            for (index, (key, value)) in members.enumerated() {
                out.append(String(repeating: " ", count: indent + 2))
                out.append(JSONValue.string(key).serialized + ": ")
                value.write(into: &out, indent: indent + 2)
                out.append(index == members.count - 1 ? "\n" : ",\n")
            }
            out.append(String(repeating: " ", count: indent) + "}")
        }
    }
}

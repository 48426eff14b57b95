// The harness is configured by environment variables (PROTOCOL §9), read with the reference's rules.

import Foundation

/// A configuration problem the operator must fix; the commands print it and exit 2.
package struct HarnessConfigurationError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// Environment lookups with PROTOCOL §9's rules: strings are trimmed and empty means unset.
package struct HarnessEnvironment: Sendable {
    package let values: [String: String]

    package init(_ values: [String: String]) { self.values = values }

    /// The trimmed value, or `nil` when unset or blank.
    package func string(_ name: String) -> String? {
        guard let raw = values[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !raw.isEmpty else { return nil }
        return raw
    }

    /// §9.1: a positive integer, else `default` (non-positive and unparseable values fall back).
    package func positiveInt(_ name: String, default fallback: Int) -> Int {
        guard let raw = string(name), let value = Int(raw), value > 0 else { return fallback }
        return value
    }

    /// A positive number (fractions allowed), else `default`.
    package func positiveDouble(_ name: String, default fallback: Double) -> Double {
        guard let raw = string(name), let value = Double(raw), value > 0, value.isFinite else { return fallback }
        return value
    }

    /// A base URL with trailing slashes stripped, or `nil` when unset.
    package func baseURL(_ name: String) -> String? {
        guard var url = string(name) else { return nil }
        while url.hasSuffix("/") { url.removeLast() }
        return url.isEmpty ? nil : url
    }

    /// A gate threshold: unset → `nil`; set → a non-negative integer, or an error naming the variable
    /// (a typo must not silently disable a release gate).
    package func threshold(_ name: String) throws -> Int? {
        guard let raw = string(name) else { return nil }
        guard let value = Int(raw), value >= 0 else {
            throw HarnessConfigurationError("\(name) must be a non-negative integer, got '\(raw)'")
        }
        return value
    }

    /// A gate threshold with a default when unset.
    package func threshold(_ name: String, default fallback: Int) throws -> Int {
        try threshold(name) ?? fallback
    }

    /// A boolean: `1`, `true`, `yes`, `on` (case-insensitive) are true; unset is `default`.
    package func bool(_ name: String, default fallback: Bool) -> Bool {
        guard let raw = string(name)?.lowercased() else { return fallback }
        return ["1", "true", "yes", "on"].contains(raw)
    }
}

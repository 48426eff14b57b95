// Typed reads of environment variables, each failure worded with the variable's name.

import RelayCore

/// Typed access to environment values. Numbers are not trimmed; empty means unset.
struct EnvironmentReader {
    let env: [String: String]

    func rawString(_ name: String) -> String? { env[name] }

    func string(_ name: String) -> String? {
        guard let v = env[name]?.trimmingASCIIWhitespace(), !v.isEmpty else { return nil }
        return v
    }

    func integer(_ name: String, max: Int = Int(Int32.max) * 1_000) throws(ConfigurationError) -> Int? {
        guard let raw = env[name], !raw.isEmpty else { return nil }
        guard let v = Int(raw), v >= 0, v <= max else {
            throw ConfigurationError("\(name) must be a whole number from 0 to \(max) (got \"\(raw)\").")
        }
        return v
    }

    static func boolean(_ raw: String) -> Bool? {
        switch raw.trimmingASCIIWhitespace().lowercased() {
        case "1", "true", "yes", "on": true
        case "0", "false", "no", "off", "": false
        default: nil
        }
    }
}

import Foundation
import RelayLocalCluster
import RelayTestClient
import RelayTestSupport
import Testing

/// docs/metrics.md against the processes: every family a relay node (cluster mode, Sentinel, TLS)
/// and `relay-probe --every` export is documented with its type, every documented family is
/// exported, each carries HELP text, and `promtool check metrics` has nothing to say about either
/// exposition.
@Suite("Metrics reference", .serialized, .timeLimit(.minutes(3)))
struct MetricsReferenceTests {
    /// Family name → type, from the `# TYPE` lines; and the families with a non-empty `# HELP`.
    static func families(_ exposition: String) -> (types: [String: String], helped: Set<String>) {
        var types: [String: String] = [:], helped: Set<String> = []
        for line in exposition.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 3)
            guard parts.count >= 4, parts[0] == "#" else { continue }
            if parts[1] == "TYPE" { types[String(parts[2])] = String(parts[3]) }
            if parts[1] == "HELP", !parts[3].trimmingCharacters(in: .whitespaces).isEmpty { helped.insert(String(parts[2])) }
        }
        return (types, helped)
    }

    /// The rows of docs/metrics.md: name → type.
    static func documented() throws -> [String: String] {
        let text = try RunbookConsistencyTests.read("docs/metrics.md")
        var rows: [String: String] = [:]
        for match in RunbookConsistencyTests.matches("^\\| `([a-z][a-z0-9_:]*)` \\| ([a-z]+) \\|", in: text) {
            let cells = match.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            rows[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = cells[1]
        }
        return rows
    }

    /// promtool from Deploy/validate.sh, which installs it when missing.
    static func promtool() async throws -> String {
        let script = RunbookConsistencyTests.root.appendingPathComponent("Deploy/validate.sh").path
        let process = try ChildProcess.launch(executable: "/bin/bash", arguments: [script, "--promtool"], environment: nil)
        guard try await process.waitForExit(timeout: .seconds(300)) == 0 else {
            throw TestFailure("Deploy/validate.sh --promtool failed: \(process.standardError.suffix(600))")
        }
        return process.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// What `promtool check metrics` prints for `exposition` (nothing when it is clean).
    static func lint(_ exposition: String, with promtool: String) async throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("exposition-\(UUID().uuidString).txt").path
        try exposition.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let process = try ChildProcess.launch(
            executable: "/bin/bash", arguments: ["-c", "\"$0\" check metrics < \"$1\"", promtool, file], environment: nil)
        let status = try await process.waitForExit(timeout: .seconds(60))
        let said = (process.standardOutput + process.standardError).trimmingCharacters(in: .whitespacesAndNewlines)
        return status == 0 ? said : "exit \(status): \(said)"
    }

    @Test func theReferenceTheHelpAndPromtoolAgreeWithWhatIsExported() async throws {
        let combined = try await RunbookConsistencyTests.exportedExposition()
        // exportedExposition joins the node's and the probe's with one blank line.
        let (types, helped) = Self.families(combined)
        #expect(types.keys.contains("relay_build_info") && types.keys.contains("process_open_fds"), "\(types.keys.sorted())")
        #expect(combined.contains(#"relay_build_info{"#))
        #expect(combined.contains(#"le="45.0""#) || combined.contains(#"le="45""#), "HTTP latency buckets reach the long-poll")

        let documented = try Self.documented()
        let undocumented = Set(types.keys).subtracting(documented.keys).sorted()
        let missing = Set(documented.keys).subtracting(types.keys).sorted()
        #expect(undocumented.isEmpty, "exported, not in docs/metrics.md: \(undocumented)")
        #expect(missing.isEmpty, "in docs/metrics.md, not exported: \(missing)")
        let wrongType = documented.filter { name, type in types[name].map { $0 != type } ?? false }
        #expect(wrongType.isEmpty, "documented with another type: \(wrongType) (exported: \(types.filter { wrongType[$0.key] != nil }))")
        let unhelped = Set(types.keys).subtracting(helped).sorted()
        #expect(unhelped.isEmpty, "no HELP text: \(unhelped)")

        let promtool = try await Self.promtool()
        for (index, part) in combined.components(separatedBy: "\n\n").enumerated() where !part.isEmpty {
            let said = try await Self.lint(part + "\n", with: promtool)
            #expect(said.isEmpty, "promtool check metrics on exposition \(index): \(said)")
        }
    }
}

import Foundation
import RelayTestClient
import RelayDrills
import RelayLocalCluster
import RelayServer
import RelayTestSupport
import Testing

/// The runbooks and the alert rules against the relay as it is: every `relay_*` name they read is
/// one a running relay node exports, and every command they tell an on-call to run exists.
@Suite("Runbooks and alerts agree with the relay", .timeLimit(.minutes(2)))
struct RunbookConsistencyTests {
    /// The repository root (this file is Tests/DeployTests/…).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The documents an on-call reads, relative to the root.
    static func documents() throws -> [String] {
        let runbooks = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Runbooks").path)
            .filter { $0.hasSuffix(".md") }.sorted().map { "Runbooks/\($0)" }
        return runbooks + ["Deploy/README.md", "README.md", "LoadTests/README.md"]
    }

    /// Every YAML and JSON file under Deploy/ (the PrometheusRules, the alert unit tests, the
    /// manifests, the adapter rule, the Grafana dashboard).
    static func deployYAML() -> [String] {
        let deploy = root.appendingPathComponent("Deploy")
        let files = FileManager.default.enumerator(atPath: deploy.path)?.compactMap { $0 as? String } ?? []
        return files.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".json") }.sorted().map { "Deploy/\($0)" }
    }

    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    static func matches(_ pattern: String, in text: String, group: Int = 0) -> [String] {
        let regex = try! NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines])
        let range = NSRange(text.startIndex..., in: text)
        return regex.matches(in: text, range: range).compactMap { Range($0.range(at: group), in: text).map { String(text[$0]) } }
    }

    /// What a Markdown document shows as code: fenced blocks and inline spans.
    static func code(_ markdown: String) -> String {
        let fenced = matches("```[^\\n]*\\n[\\s\\S]*?```", in: markdown)
        let withoutFences = fenced.reduce(markdown) { $0.replacingOccurrences(of: $1, with: "") }
        return (fenced + matches("`[^`\\n]+`", in: withoutFences)).joined(separator: "\n")
    }

    // MARK: Metrics

    /// Scrapes a relay node in cluster mode (Redis and NATS configured, so their metrics exist;
    /// Redis found through a Sentinel, as `components/redis-sentinel` runs it, so the Sentinel
    /// metrics exist too; serving TLS, so the certificate's exist) after requests to every kind of
    /// route, and a `relay-probe --every` probing it (`components/relay-probe`).
    static func exportedExposition() async throws -> String {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let (certificate, key) = try await certificates.makeServerCertificate()
        let redisURL = try TestServices.redisURL()
        guard let redisPort = URL(string: redisURL)?.port else { throw TestFailure("RELAY_TEST_REDIS_URL=\(redisURL) has no port") }
        // Watches the shared test Redis and never fails it over (no replica, down-after 10 min).
        let sentinel = try LocalDependencyServer(
            .sentinel(masterName: "relay", masterPort: redisPort, quorum: 1, downAfterMillis: 600_000),
            executable: try TestServices.redisServer())
        try await sentinel.start()
        defer { sentinel.terminateIfRunning() }
        let cluster = try await LocalCluster.start(
            nodes: 1, redis: .external(url: redisURL), nats: .external(url: try TestServices.natsURL()),
            environment: ["REDIS_SENTINELS": "127.0.0.1:\(sentinel.port)", "TLS_CERT_FILE": certificate, "TLS_KEY_FILE": key],
            prefix: "relaydeploytest", clientTLS: try .certificateAuthorities(pemFile: certificates.caFile))
        defer { cluster.killAll() }
        let http = cluster.node(0).http
        for path in ["/healthz", "/livez", "/readyz"] { _ = try await http.get(path) }
        _ = try await http.postJSON(path: "/pair/join", body: ["sessionID": "x"])
        let probed = try await probeExposition(relayURL: cluster.baseURL(0), caFile: certificates.caFile)
        let text = try await cluster.prometheus(0)
        _ = await cluster.shutdown(drainTimeout: .seconds(10))
        return text + "\n" + probed
    }

    /// What `relay-probe --every` exports once it has probed `relayURL` (every series exists from
    /// the start, failures at 0).
    static func probeExposition(relayURL: String, caFile: String) async throws -> String {
        let port = try freeLoopbackPort()
        let probe = try ChildProcess.launch(
            executable: try LocalRelayNode.siblingExecutable(named: "relay-probe", overriddenBy: "RELAY_PROBE_BINARY"),
            arguments: ["--every", "1", "--ca-file", caFile, "--metrics-host", "127.0.0.1", "--metrics-port", "\(port)", relayURL],
            environment: nil)
        defer { probe.terminateIfRunning() }
        let metrics = RelayHTTPClient(baseURL: "http://127.0.0.1:\(port)")
        var text = ""
        let probed = await eventually {
            text = (try? await metrics.get("/metrics", timeout: .seconds(2)))?.bodyText ?? ""
            return text.contains(#"relay_probe_runs_total{outcome="success"} 1"#)
        }
        guard probed else { throw TestFailure("relay-probe did not probe \(relayURL): \(text) \(probe.standardError.suffix(800))") }
        return text
    }

    /// The metric families and sample names of an exposition (a histogram and its `_bucket`,
    /// `_sum`, `_count`) and the label values it carries.
    static func exported(_ exposition: String) -> (names: Set<String>, labelValues: Set<String>) {
        let lines = exposition.split(separator: "\n").map(String.init)
        let samples = lines.filter { !$0.hasPrefix("#") }
        return (
            Set(samples.map { String($0.prefix { $0 != "{" && $0 != " " }) } + lines.flatMap { matches("^# TYPE (\\S+)", in: $0, group: 1) }),
            Set(samples.flatMap { matches("=\"([^\"]*)\"", in: $0, group: 1) })
        )
    }

    @Test func everyMetricAnAlertOrRunbookNamesIsExportedByTheRelay() async throws {
        let exposition = try await Self.exportedExposition()
        // Reason and code values such as `relay_over_capacity` look like metric names; they are
        // fine where the relay exports them as a label value.
        let (exported, labelValues) = Self.exported(exposition)
        #expect(exported.contains("relay_ws_auth_failures_total") && exported.contains("relay_dependency_up"), "\(exposition.prefix(400))")

        var unknown: [String] = []
        var named = 0
        // LoadTests/README.md documents artifact fields (`relay_cpu_seconds`), not metrics.
        for path in try Self.documents() + Self.deployYAML() where path != "LoadTests/README.md" {
            for name in Set(Self.matches("\\brelay_[a-z0-9_]+\\b", in: try Self.read(path))) {
                named += 1
                if !exported.contains(name) && !labelValues.contains(name) { unknown.append("\(path): \(name)") }
            }
        }
        #expect(named > 30, "the documents name the relay's metrics")
        #expect(unknown.isEmpty, "named but not exported by the relay: \(unknown.sorted())")
    }

    @Test func everyAlertExpressionReadsOnlyExportedMetrics() async throws {
        // The rule file on its own, so a failure names the alert.
        let rules = try Self.read("Deploy/kubernetes/base/prometheusrule.yaml")
        let exported = Self.exported(try await Self.exportedExposition()).names
        var current = "?"
        var problems: [String] = []
        var alerts = 0
        var inExpression = false
        for line in rules.split(separator: "\n", omittingEmptySubsequences: false) {
            if let alert = Self.matches("^\\s*- alert: (\\S+)", in: String(line), group: 1).first {
                current = alert
                alerts += 1
                inExpression = false
                continue
            }
            if line.contains("expr:") { inExpression = true } else if Self.matches("^\\s+[a-z_]+:", in: String(line)).first != nil { inExpression = false }
            guard inExpression else { continue }
            for name in Self.matches("\\brelay_[a-z0-9_]+\\b", in: String(line)) where !exported.contains(name) {
                problems.append("\(current): \(name)")
            }
        }
        #expect(alerts >= 12)
        #expect(problems.isEmpty, "alert expressions reading metrics the relay does not export: \(problems)")
    }

    // MARK: Configuration

    @Test func theConfigMapListsEveryVariableTheRelayReads() throws {
        // `# NAME=value`: documented with an example, left unset.
        let listed = Set(Self.matches("^(?:# )?([A-Z][A-Z0-9_]*)=", in: try Self.read("Deploy/kubernetes/base/config.env"), group: 1))
        let read = Set(RelayConfiguration.variables.map(\.name))
        #expect(read.count > 30)
        #expect(read.subtracting(listed).isEmpty, "read by the relay, missing from base/config.env: \(read.subtracting(listed).sorted())")
    }

    // MARK: Commands

    /// The targets the Makefile defines.
    static func makeTargets() throws -> Set<String> {
        Set(matches("^([A-Za-z0-9_.-]+):(?!=)", in: try read("Makefile"), group: 1))
    }

    @Test func makeAloneListsTheTargetsAndRunsNothing() async throws {
        let process = try ChildProcess.launch(executable: "/usr/bin/env", arguments: ["make", "-C", Self.root.path, "--no-print-directory"], environment: nil)
        #expect(try await process.waitForExit(timeout: .seconds(60)) == 0, "\(process.standardError)")
        let listed = Set(Self.matches("^  ([a-z][a-z0-9-]*) +\\S", in: process.standardOutput, group: 1))
        // The reference script's aliases share one line.
        let targets = try Self.makeTargets().filter { !$0.hasPrefix(".") && !$0.hasPrefix("remote-control-") }
        #expect(targets.subtracting(listed).isEmpty, "make lists no description for: \(targets.subtracting(listed).sorted())")
        #expect(!process.standardOutput.contains("apt-get"), "\(process.standardOutput)")
    }

    /// `relay-load`'s subcommands, from its own help.
    static func relayLoadSubcommands() async throws -> Set<String> {
        let executable = URL(fileURLWithPath: try LocalRelayNode.defaultExecutable()).deletingLastPathComponent().appendingPathComponent("relay-load").path
        let child = try ChildProcess.launch(executable: executable, arguments: ["--help"], environment: [:])
        _ = try await child.waitForExit(timeout: .seconds(30))
        let help = child.standardOutput
        guard let section = help.range(of: "SUBCOMMANDS:") else { return [] }
        return Set(matches("^  ([a-z][a-z0-9-]*)", in: String(help[section.upperBound...]), group: 1))
    }

    /// `kind name` pairs of every manifest under Deploy/kubernetes (kinds lowercased), also under
    /// the name an overlay's `nameSuffix` gives them (`deployment relay-canary`).
    static func manifestObjects() throws -> Set<String> {
        var objects: Set<String> = []
        for path in deployYAML() where path.hasPrefix("Deploy/kubernetes/") {
            for document in try read(path).components(separatedBy: "\n---") {
                guard let kind = matches("^kind: (\\S+)", in: document, group: 1).first,
                    let name = matches("^metadata:\\n(?:  .*\\n)*?  name: (\\S+)", in: document, group: 1).first
                else { continue }
                objects.insert("\(kind.lowercased()) \(name)")
            }
        }
        let suffixes = try deployYAML().filter { $0.hasSuffix("/kustomization.yaml") }
            .flatMap { matches("^nameSuffix: (\\S+)", in: try read($0), group: 1) }
        return objects.union(objects.flatMap { object in suffixes.map { object + $0 } })
    }

    @Test func everyCommandARunbookNamesExists() async throws {
        let targets = try Self.makeTargets()
        #expect(targets.isSuperset(of: ["run", "test", "load", "gate", "soak", "drill-node-loss"]), "\(targets.sorted())")
        let loadCommands = try await Self.relayLoadSubcommands()
        #expect(loadCommands.isSuperset(of: ["load", "gate", "soak"]), "\(loadCommands)")
        let drills = Set(Drill.allCases.map(\.rawValue))
        let objects = try Self.manifestObjects()
        let kinds = ["deployment": "deployment", "statefulset": "statefulset", "hpa": "horizontalpodautoscaler", "svc": "service",
                     "service": "service", "secret": "secret", "configmap": "configmap", "pdb": "poddisruptionbudget"]

        var problems: [String] = []
        var checked = 0
        for path in try Self.documents() {
            let code = Self.code(try Self.read(path))
            for target in Set(Self.matches("\\bmake ([a-z][a-z0-9-]*)", in: code, group: 1)) {
                checked += 1
                if !targets.contains(target) { problems.append("\(path): make \(target): no such Makefile target") }
            }
            for command in Set(Self.matches("\\brelay-load ([a-z][a-z0-9-]*)", in: code, group: 1)) {
                checked += 1
                if !loadCommands.contains(command) { problems.append("\(path): relay-load \(command): no such subcommand") }
            }
            for drill in Set(Self.matches("\\brelay-drill ([a-z][a-z0-9-]*)", in: code, group: 1)) {
                checked += 1
                if !drills.contains(drill) { problems.append("\(path): relay-drill \(drill): no such drill") }
            }
            // Files the reader is told to run or open.
            for file in Set(Self.matches("(?<![\\w/.-])((?:Deploy|Runbooks|LoadTests|scripts|\\.ci)/[A-Za-z0-9_./-]*[A-Za-z0-9_])", in: code, group: 1)) {
                checked += 1
                if !FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(file).path) {
                    problems.append("\(path): \(file): no such file")
                }
            }
            // Objects kubectl is pointed at: `deployment/relay`, `hpa relay`.
            for line in code.split(separator: "\n") where line.contains("kubectl") {
                for match in Self.matches("\\b(deployment|statefulset|hpa|svc|service|secret|configmap|pdb)[/ ]([a-z0-9][a-z0-9-]*)\\b", in: String(line)) {
                    let parts = match.split(whereSeparator: { $0 == "/" || $0 == " " }).map(String.init)
                    guard let kind = kinds[parts[0]], parts[1] != "generic" else { continue }
                    checked += 1
                    if !objects.contains("\(kind) \(parts[1])") { problems.append("\(path): kubectl … \(match): no such object in Deploy/kubernetes") }
                }
            }
        }
        #expect(checked > 40, "the runbooks name commands")
        #expect(problems.isEmpty, "\(problems.sorted().joined(separator: "\n"))")
    }
}

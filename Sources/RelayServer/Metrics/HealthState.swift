// Readiness for /readyz: draining, and whether each configured dependency answers.

import RelayProtocol
import Synchronization

/// Readiness: not ready while draining, or while a configured dependency does not answer.
public final class HealthState: Sendable {
    private let draining = Atomic<Bool>(false)
    private let checks = Mutex<[(name: String, isUp: @Sendable () -> Bool)]>([])
    private let details = Mutex<[(key: String, value: @Sendable () -> JSONValue)]>([])

    /// Ready, not draining, no dependency yet.
    public init() {}

    /// Whether the node is shutting down.
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Fails readiness from now on.
    public func startDraining() { draining.store(true, ordering: .relaxed) }

    /// Each configured dependency and whether it answers now.
    public func dependencies() -> [(name: String, isUp: Bool)] {
        checks.withLock { $0 }.map { ($0.name, $0.isUp()) }
    }

    /// Adds a dependency whose health readiness reflects (`/livez` never checks them).
    public func addDependency(_ name: String, isUp: @escaping @Sendable () -> Bool) {
        checks.withLock { $0.append((name, isUp)) }
    }

    /// Adds a member to `/readyz`'s body (where a dependency is, what it did), computed per request.
    public func addDetail(_ key: String, value: @escaping @Sendable () -> JSONValue) {
        details.withLock { $0.append((key, value)) }
    }

    /// Ready, and the JSON body of `/readyz`.
    public func readiness() -> (ready: Bool, body: [UInt8]) {
        let dependencies = dependencies()
        let ready = !isDraining && dependencies.allSatisfy(\.1)
        var w = JSONObjectWriter()
        w.bool("ok", ready)
        w.bool("draining", isDraining)
        w.raw("dependencies", JSONValue.object(Dictionary(uniqueKeysWithValues: dependencies.map {
            ($0.0, JSONValue.string($0.1 ? "up" : "down"))
        })).serialized)
        for detail in details.withLock({ $0 }) { w.raw(detail.key, detail.value().serialized) }
        return (ready, w.finish())
    }
}

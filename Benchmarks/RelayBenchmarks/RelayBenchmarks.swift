// Allocations per frame on the relay's per-frame paths, counted (not timed) so that the checked-in
// thresholds hold on a busy machine: `make bench` runs them, `.ci/run` checks them
// (Benchmarks/README.md).

import Benchmark
@_spi(Benchmarks) import RelayCore
import RelayProtocol

/// What a benchmark's setup made, for its iterations (set once before they run, read after).
final class Prepared: @unchecked Sendable {
    var fixture: PerFrameFixture?
    var frames: [[UInt8]] = []
    var next = 0
    var envelope: BusEnvelope?

    /// The next prepared frame; there is one for every iteration of a run.
    func takeFrame() -> [UInt8] {
        defer { next += 1 }
        return frames[next]
    }
}

let iterations = 2_000

/// The same for every benchmark here; a function because `Configuration` is not `Sendable`.
func configuration() -> Benchmark.Configuration {
    Benchmark.Configuration(
    metrics: [.mallocCountTotal],
    warmupIterations: 10,
    scalingFactor: .one,
    maxDuration: .seconds(30),
    maxIterations: iterations,
    // Counts are exact: any new allocation on these paths fails the check.
    thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )
}

let phoneToDesktop = Prepared()
let desktopToPhones = Prepared()
let busToPhones = Prepared()

let benchmarks: @Sendable () -> Void = {
    // A command from a phone, through validation, budgets and re-serialization, onto the desktop's
    // queue (PROTOCOL §4.7). Each iteration sends the next seq: a replay would take another path.
    Benchmark(
        "PhoneFrameToDesktopQueue", configuration: configuration(),
        closure: { benchmark in
            let fixture = phoneToDesktop.fixture!
            let frame = phoneToDesktop.takeFrame()
            benchmark.startMeasurement()
            fixture.phoneEndpoints[0].receive(text: frame)
            benchmark.stopMeasurement()
            precondition(fixture.desktop.drain() == 1, "the command did not reach the desktop")
        },
        setup: {
            let fixture = try await PerFrameFixture.make(phones: 1)
            phoneToDesktop.fixture = fixture
            phoneToDesktop.frames = (1...UInt64(iterations + 100)).map { fixture.command(seq: $0) }
        })

    // A desktop event, forwarded verbatim onto each of four phones' queues (§4.8).
    Benchmark(
        "DesktopFrameToFourPhoneQueues", configuration: configuration(),
        closure: { benchmark in
            let fixture = desktopToPhones.fixture!
            let frame = desktopToPhones.frames[0]
            benchmark.startMeasurement()
            fixture.desktopEndpoint.receive(text: frame)
            benchmark.stopMeasurement()
            for phone in fixture.phones { precondition(phone.drain() == 1, "the event did not reach every phone") }
        },
        setup: {
            let fixture = try await PerFrameFixture.make(phones: 4)
            desktopToPhones.fixture = fixture
            desktopToPhones.frames = [fixture.event(seq: 1)]
        })

    // A desktop event another node published, onto this node's two phones' queues (§6.6).
    Benchmark(
        "BusFrameToTwoPhoneQueues", configuration: configuration(),
        closure: { benchmark in
            let fixture = busToPhones.fixture!
            let envelope = busToPhones.envelope!
            benchmark.startMeasurement()
            fixture.relay.receiveFromBus(envelope)
            benchmark.stopMeasurement()
            for phone in fixture.phones { precondition(phone.drain() == 1, "the bus frame did not reach every phone") }
        },
        setup: {
            let fixture = try await PerFrameFixture.make(phones: 2, bus: InProcessBusHub().makeBus())
            busToPhones.fixture = fixture
            busToPhones.envelope = BusEnvelope(
                sessionID: fixture.sessionID, sourceInstanceID: "other-node", target: .mobile, payload: fixture.event(seq: 1),
                issuedAtMillis: wallClockMillis(), nonce: "benchmark")
        })
}

import RelayCore
import Testing

/// PROTOCOL §2.4, §4.10 and §10.2 `consume_rate_bucket_enforces_limit_and_recovers_next_window`.
@Suite("RateWindow", .timeLimit(.minutes(2)))
struct RateWindowTests {
    @Test func allowsExactlyTheLimitThenDenies() {
        var window = RateWindow(startingAt: 1_000)
        let first = window.consume(limit: 2, at: 1_000, 1_001, 1_002)
        #expect(first == [true, true, false])
    }

    @Test func rateWindowRecoversInTheNextWindow() {
        var window = RateWindow(startingAt: 1_000)
        let firstWindow = window.consume(limit: 2, at: 1_000, 1_000, 60_999)
        #expect(firstWindow == [true, true, false])
        // The window started at 1000 ends at 61000: from that instant a new one begins.
        let atWindowEnd = window.consume(limit: 2, at: 61_000)
        #expect(atWindowEnd == [true])
        #expect(window.count == 1)
        #expect(window.endsAtMillis == 121_000)
        let secondWindow = window.consume(limit: 2, at: 61_001, 61_002)
        #expect(secondWindow == [true, false])
    }

    @Test func aLateFirstHitStartsItsWindowAtThatHit() {
        var window = RateWindow(startingAt: 0)
        let late = window.consume(limit: 1, at: 500_000)
        #expect(late == [true])
        #expect(window.endsAtMillis == 560_000)
        let beforeItsEnd = window.consume(limit: 1, at: 559_999)
        #expect(beforeItsEnd == [false])
    }

    @Test func deniedHitsStillCountWithinTheWindow() {
        var window = RateWindow(startingAt: 0)
        _ = window.consume(limit: 1, at: 10, 10, 10, 10, 10)
        #expect(window.count == 5)
    }

    @Test func windowIsSixtySecondsFromItsStart() {
        let window = RateWindow(startingAt: 5_000)
        #expect(RateWindow.lengthMillis == 60_000)
        #expect(window.count == 0)
        #expect(window.endsAtMillis == 65_000)
    }

    @Test func windowExpiresForPruningExactlyAtItsEnd() {
        let window = RateWindow(startingAt: 0)
        #expect(!window.isExpired(now: 59_999))
        #expect(window.isExpired(now: 60_000))
        #expect(window.isExpired(now: 3_600_000))
    }

    @Test(arguments: [1, 3, 60, 1_200])
    func exactlyLimitHitsPassPerWindow(limit: Int) {
        var window = RateWindow(startingAt: 0)
        let outcomes = (0..<(limit * 2)).map { window.consume(limit: limit, now: Int64($0)) }
        #expect(outcomes.filter { $0 }.count == limit)
        #expect(outcomes.prefix(limit).allSatisfy { $0 })
    }
}

extension RateWindow {
    /// Consumes one hit at each of `times`, returning whether each was allowed.
    fileprivate mutating func consume(limit: Int, at times: Int64...) -> [Bool] {
        times.map { consume(limit: limit, now: $0) }
    }
}

import RelayCore
import RelayTestSupport
import Testing

/// PROTOCOL §4.4: a device's current token and its grace tokens.
@Suite("DeviceRecord", .timeLimit(.minutes(2)))
struct DeviceRecordTests {
    static func device(retired: [RetiredToken] = []) -> DeviceRecord {
        DeviceRecord(
            deviceID: "dev_0123456789ab", currentToken: "current-token-0123456789", retiredTokens: retired,
            name: "Phone", joinedAtMillis: 1_000, lastSeenAtMillis: 1_000)
    }

    @Test func currentTokenIsAcceptedWhateverTheTime() {
        let device = Self.device()
        #expect(device.accepts("current-token-0123456789", now: 0))
        #expect(device.accepts("current-token-0123456789", now: .max))
    }

    @Test func retiredTokenIsAcceptedOnlyBeforeItsExpiry() {
        let device = Self.device(retired: [RetiredToken(token: "grace-token-0123456789", expiresAtMillis: 5_000)])
        #expect(device.accepts("grace-token-0123456789", now: 4_999))
        #expect(!device.accepts("grace-token-0123456789", now: 5_000))
        #expect(!device.accepts("grace-token-0123456789", now: 9_000))
    }

    @Test func unknownTokensAndNearMissesAreRefused() {
        let device = Self.device(retired: [RetiredToken(token: "grace-token-0123456789", expiresAtMillis: 5_000)])
        #expect(!device.accepts("other-token-0123456789", now: 0))
        #expect(!device.accepts("current-token-012345678", now: 0))
        #expect(!device.accepts("current-token-0123456789x", now: 0))
        #expect(!device.accepts("", now: 0))
    }

    @Test func pruningDropsOnlyExpiredRetiredTokens() {
        var device = Self.device(retired: [
            RetiredToken(token: "expired-token-0123456789", expiresAtMillis: 2_000),
            RetiredToken(token: "boundary-token-012345678", expiresAtMillis: 3_000),
            RetiredToken(token: "live-token-0123456789ab", expiresAtMillis: 3_001),
        ])
        let pruned = device.pruneRetired(now: 3_000)
        #expect(pruned)
        #expect(device.retiredTokens.map(\.token) == ["live-token-0123456789ab"])
        #expect(device.currentToken == "current-token-0123456789")
    }

    @Test func pruningReportsWhenNothingChanged() {
        var device = Self.device(retired: [RetiredToken(token: "live-token-0123456789ab", expiresAtMillis: 9_000)])
        let prunedLive = device.pruneRetired(now: 1_000)
        #expect(!prunedLive)
        #expect(device.retiredTokens.count == 1)
        var bare = Self.device()
        let prunedNothing = bare.pruneRetired(now: .max)
        #expect(!prunedNothing)
    }
}

// The StateStore contract (InMemoryStateStore and RedisStateStore alike) is in
// Tests/RelayRedisTests/StateStoreContractTests.swift.

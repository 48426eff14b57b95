import RelayCore
import Testing

/// PROTOCOL §4.4: a device's current token and its grace tokens.
@Suite("DeviceRecord")
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

/// The single-node store keeps the newest version, and a delete stays a tombstone.
@Suite("InMemoryStateStore")
struct InMemoryStateStoreTests {
    static func record(_ id: String = "session-0123456789", joinToken: String) -> SessionRecord {
        SessionRecord(
            sessionID: id, joinToken: joinToken, joinTokenExpiresAtMillis: 10_000,
            desktopSessionToken: "desktop-token-0123456789", relayWebSocketURL: "ws://localhost:8787/ws",
            idleTimeoutSeconds: 1800, createdAtMillis: 1_000, lastActivityAtMillis: 1_000)
    }

    @Test func savedRecordLoadsWithItsVersion() async throws {
        let store = InMemoryStateStore()
        #expect(!store.isShared)
        #expect(try await store.load(sessionID: "session-0123456789").record == nil)
        try await store.save(Self.record(joinToken: "join-a"), version: 3)
        let loaded = try await store.load(sessionID: "session-0123456789")
        #expect(loaded.record == Self.record(joinToken: "join-a"))
        #expect(loaded.version == 3)
        #expect(try await store.loadAll().map(\.record) == [Self.record(joinToken: "join-a")])
    }

    @Test func olderSaveAfterNewerIsIgnored() async throws {
        let store = InMemoryStateStore()
        try await store.save(Self.record(joinToken: "join-v1"), version: 1)
        try await store.save(Self.record(joinToken: "join-v2"), version: 2)
        try await store.save(Self.record(joinToken: "join-v1-late"), version: 1)
        let loaded = try await store.load(sessionID: "session-0123456789")
        #expect(loaded.record?.joinToken == "join-v2")
        #expect(loaded.version == 2)
    }

    @Test func saveOfTheSameVersionReplacesTheRecord() async throws {
        let store = InMemoryStateStore()
        try await store.save(Self.record(joinToken: "join-first"), version: 4)
        try await store.save(Self.record(joinToken: "join-second"), version: 4)
        #expect(try await store.load(sessionID: "session-0123456789").record?.joinToken == "join-second")
    }

    @Test func deleteKeepsItsVersionSoALateOlderSaveCannotResurrect() async throws {
        let store = InMemoryStateStore()
        try await store.save(Self.record(joinToken: "join-v2"), version: 2)
        try await store.delete(sessionID: "session-0123456789", version: 3)
        #expect(try await store.load(sessionID: "session-0123456789").record == nil)
        try await store.save(Self.record(joinToken: "join-v2-late"), version: 2)
        try await store.save(Self.record(joinToken: "join-v1-late"), version: 1)
        #expect(try await store.load(sessionID: "session-0123456789").record == nil)
        #expect(try await store.loadAll().isEmpty)
        // A genuinely newer record (a new pair start) is stored again.
        try await store.save(Self.record(joinToken: "join-v4"), version: 4)
        #expect(try await store.load(sessionID: "session-0123456789").record?.joinToken == "join-v4")
    }

    @Test func staleDeleteDoesNotRemoveANewerRecord() async throws {
        let store = InMemoryStateStore()
        try await store.save(Self.record(joinToken: "join-v5"), version: 5)
        try await store.delete(sessionID: "session-0123456789", version: 4)
        #expect(try await store.load(sessionID: "session-0123456789").version == 5)
    }

    @Test func sessionsAreVersionedIndependently() async throws {
        let store = InMemoryStateStore()
        try await store.save(Self.record("session-aaaaaaaaaaaa", joinToken: "join-a"), version: 9)
        try await store.save(Self.record("session-bbbbbbbbbbbb", joinToken: "join-b"), version: 1)
        try await store.delete(sessionID: "session-aaaaaaaaaaaa", version: 9)
        #expect(try await store.load(sessionID: "session-bbbbbbbbbbbb").record?.joinToken == "join-b")
        #expect(try await store.loadAll().map(\.record.sessionID) == ["session-bbbbbbbbbbbb"])
    }
}

@Suite struct InMemoryCompareAndSaveTests {
    @Test func compareAndSaveAppliesOnlyOnTheVersionItRead() async throws {
        let store = InMemoryStateStore()
        let first = InMemoryStateStoreTests.record(joinToken: "join-a")
        #expect(try await store.compareAndSave(first, version: 1, expected: 0))
        #expect(try await !store.compareAndSave(InMemoryStateStoreTests.record(joinToken: "join-b"), version: 1, expected: 0))
        #expect(try await store.compareAndSave(InMemoryStateStoreTests.record(joinToken: "join-c"), version: 2, expected: 1))
        let stored = try await store.load(sessionID: first.sessionID)
        #expect(stored == StoredSession(record: InMemoryStateStoreTests.record(joinToken: "join-c"), version: 2))
        try await store.delete(sessionID: first.sessionID, version: 3)
        #expect(try await !store.compareAndSave(first, version: 3, expected: 2))
        #expect(try await store.compareAndSave(first, version: 4, expected: 3))
    }
}

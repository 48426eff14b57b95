import RelayCore
import RelayTestSupport
import Testing

@testable import RelayRedis

/// The stores the contract runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inMemory
    case redis

    var testDescription: String { rawValue }

    /// Runs `body` with a fresh, empty store of this kind and always cleans it up.
    func withStore(_ body: (any StateStore) async throws -> Void) async throws {
        switch self {
        case .inMemory:
            try await body(InMemoryStateStore())
        case .redis:
            try await RedisStoreFixture.with { fixture in try await body(fixture.store) }
        }
    }
}

/// The `StateStore` contract (PROTOCOL §6.1, DECISIONS 3–4): the same scenarios against the
/// single-node store and the Redis store, so the two cannot drift apart.
@Suite("StateStore contract", .timeLimit(.minutes(2)))
struct StateStoreContractTests {
    @Test(arguments: StoreKind.allCases)
    func everyTokenOfAStoredRecordNamesItsSession(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            #expect(try await store.sessionID(forToken: "desktop-token-0123456789") == nil)
            try await store.save(Records.paired(), version: 1)
            try await store.save(Records.plain("session-other-0123"), version: 1)
            #expect(try await store.sessionID(forToken: "device-token-0123456789") == "session-0123456789")
            #expect(try await store.sessionID(forToken: "retired-token-0123456789") == "session-0123456789")
            #expect(try await store.sessionID(forToken: "unknown-token-0123456789") == nil)
            try await store.delete(sessionID: "session-0123456789", version: 2)
            #expect(try await store.sessionID(forToken: "device-token-0123456789") == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func savedRecordLoadsWithItsVersion(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            #expect(store.isShared == (kind == .redis))
            #expect(try await store.load(sessionID: "session-0123456789") == StoredSession(record: nil, version: 0))
            #expect(try await store.loadAll().isEmpty)
            try await store.save(Records.plain(joinToken: "join-a"), version: 3)
            #expect(try await store.load(sessionID: "session-0123456789") == StoredSession(record: Records.plain(joinToken: "join-a"), version: 3))
            let all = try await store.loadAll()
            #expect(all.map(\.record) == [Records.plain(joinToken: "join-a")])
            #expect(all.map(\.version) == [3])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func everyFieldRoundTripsExactly(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            var record = Records.paired("session-edge-values")
            record.joinToken = "quote\" backslash\\ newline\n tab\t nul\u{0} emoji 🦊 é"
            record.joinTokenExpiresAtMillis = .max
            record.joinTokenUsedAtMillis = .min
            record.idleTimeoutSeconds = .max
            record.createdAtMillis = -1
            record.lastActivityAtMillis = 9_007_199_254_740_993  // 2^53 + 1: not exact as a double
            record.relayWebSocketURL = "wss://relay.example/ws?x=1&y=</script>"
            record.devices["dev_second"] = DeviceRecord(
                deviceID: "dev_second", currentToken: "t2", retiredTokens: [], name: "Ünïcödé \u{1F4F1}",
                joinedAtMillis: .min, lastSeenAtMillis: .max)
            record.devices["dev_0123456789ab"]?.retiredTokens.append(RetiredToken(token: "r2", expiresAtMillis: .max))
            try await store.save(record, version: .max)
            #expect(try await store.load(sessionID: record.sessionID) == StoredSession(record: record, version: .max))
            #expect(try await store.loadAll().first?.record == record)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func olderSaveAfterNewerIsIgnored(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.save(Records.plain(joinToken: "join-v1"), version: 1)
            try await store.save(Records.plain(joinToken: "join-v2"), version: 2)
            try await store.save(Records.plain(joinToken: "join-v1-late"), version: 1)
            let loaded = try await store.load(sessionID: "session-0123456789")
            #expect(loaded.record?.joinToken == "join-v2")
            #expect(loaded.version == 2)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func saveOfTheSameVersionReplacesTheRecord(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.save(Records.plain(joinToken: "join-first"), version: 4)
            try await store.save(Records.plain(joinToken: "join-second"), version: 4)
            #expect(try await store.load(sessionID: "session-0123456789").record?.joinToken == "join-second")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func deleteKeepsItsVersionSoALateOlderSaveCannotResurrect(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.save(Records.plain(joinToken: "join-v2"), version: 2)
            try await store.delete(sessionID: "session-0123456789", version: 3)
            #expect(try await store.load(sessionID: "session-0123456789") == StoredSession(record: nil, version: 3))
            try await store.save(Records.plain(joinToken: "join-v2-late"), version: 2)
            try await store.save(Records.plain(joinToken: "join-v1-late"), version: 1)
            #expect(try await store.load(sessionID: "session-0123456789") == StoredSession(record: nil, version: 3))
            #expect(try await store.loadAll().isEmpty)
            // A genuinely newer record (a new pair start) is stored again.
            try await store.save(Records.plain(joinToken: "join-v4"), version: 4)
            #expect(try await store.load(sessionID: "session-0123456789").record?.joinToken == "join-v4")
            #expect(try await store.loadAll().map(\.version) == [4])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func deleteOfAnUnknownSessionLeavesItsVersion(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.delete(sessionID: "session-never-saved", version: 5)
            #expect(try await store.load(sessionID: "session-never-saved") == StoredSession(record: nil, version: 5))
            try await store.save(Records.plain("session-never-saved"), version: 4)
            #expect(try await store.load(sessionID: "session-never-saved").record == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func staleDeleteDoesNotRemoveANewerRecord(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.save(Records.plain(joinToken: "join-v5"), version: 5)
            try await store.delete(sessionID: "session-0123456789", version: 4)
            #expect(try await store.load(sessionID: "session-0123456789") == StoredSession(record: Records.plain(joinToken: "join-v5"), version: 5))
            #expect(try await store.loadAll().count == 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func sessionsAreVersionedIndependently(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.save(Records.plain("session-aaaaaaaaaaaa", joinToken: "join-a"), version: 9)
            try await store.save(Records.plain("session-bbbbbbbbbbbb", joinToken: "join-b"), version: 1)
            try await store.save(Records.plain("session-cccccccccccc", joinToken: "join-c"), version: 2)
            try await store.delete(sessionID: "session-aaaaaaaaaaaa", version: 9)
            #expect(try await store.load(sessionID: "session-bbbbbbbbbbbb").record?.joinToken == "join-b")
            let all = try await store.loadAll().sorted { $0.record.sessionID < $1.record.sessionID }
            #expect(all.map(\.record.sessionID) == ["session-bbbbbbbbbbbb", "session-cccccccccccc"])
            #expect(all.map(\.version) == [1, 2])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func compareAndSaveAppliesOnlyOnTheVersionItRead(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            let first = Records.plain(joinToken: "join-a")
            #expect(try await store.compareAndSave(first, version: 1, expected: 0))
            #expect(try await !store.compareAndSave(Records.plain(joinToken: "join-b"), version: 1, expected: 0))
            #expect(try await !store.compareAndSave(Records.plain(joinToken: "join-b"), version: 9, expected: 2))
            #expect(try await store.compareAndSave(Records.plain(joinToken: "join-c"), version: 2, expected: 1))
            #expect(try await store.load(sessionID: first.sessionID) == StoredSession(record: Records.plain(joinToken: "join-c"), version: 2))
            // After a delete, the expected version is the delete's.
            try await store.delete(sessionID: first.sessionID, version: 3)
            #expect(try await !store.compareAndSave(first, version: 3, expected: 2))
            #expect(try await !store.compareAndSave(first, version: 4, expected: 0))
            #expect(try await store.load(sessionID: first.sessionID) == StoredSession(record: nil, version: 3))
            #expect(try await store.compareAndSave(first, version: 4, expected: 3))
            #expect(try await store.load(sessionID: first.sessionID) == StoredSession(record: first, version: 4))
            #expect(try await store.loadAll().map(\.record) == [first])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentCompareAndSaveOnOneVersionHasExactlyOneWinner(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.save(Records.plain(joinToken: "join-unused"), version: 1)
            let winners = try await withThrowingTaskGroup(of: String?.self) { group in
                for attempt in 0..<20 {
                    group.addTask {
                        var record = Records.plain(joinToken: "join-unused")
                        record.joinTokenUsedAtMillis = Int64(attempt)
                        let won = try await store.compareAndSave(record, version: 2, expected: 1)
                        return won ? "attempt-\(attempt)" : nil
                    }
                }
                return try await group.reduce(into: [String]()) { if let winner = $1 { $0.append(winner) } }
            }
            #expect(winners.count == 1)
            let stored = try await store.load(sessionID: "session-0123456789")
            #expect(stored.version == 2)
            #expect(stored.record.flatMap(\.joinTokenUsedAtMillis).map { "attempt-\($0)" } == winners.first)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func keepAliveLeavesRecordsAsTheyAre(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.save(Records.paired(), version: 7)
            try await store.keepAlive([Records.paired(), Records.plain("session-not-stored")])
            try await store.keepAlive([])
            #expect(try await store.load(sessionID: "session-0123456789") == StoredSession(record: Records.paired(), version: 7))
            #expect(try await store.load(sessionID: "session-not-stored") == StoredSession(record: nil, version: 0))
        }
    }

    // MARK: Presence

    @Test(arguments: StoreKind.allCases)
    func claimsCountWhileTheirNodesLeaseLives(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            let sessionID = "session-presence-0123"
            let a = PresenceHolder(nodeID: "node-a", holderID: "socket-1")
            let b = PresenceHolder(nodeID: "node-b", holderID: "socket-2")
            #expect(try await store.renewLease(nodeID: "node-a", ttlMillis: 60_000) == false, "the first renewal creates the lease")
            #expect(try await store.renewLease(nodeID: "node-a", ttlMillis: 60_000) == true)

            var live = try await store.claim(.desktop, sessionID: sessionID, holder: a)
            #expect(live.desktopNode == "node-a")
            // node-b holds no lease: its claim does not count (and is dropped).
            live = try await store.claim(.device("dev-1"), sessionID: sessionID, holder: b)
            #expect(live.connectedDeviceCount == 0)
            _ = try await store.renewLease(nodeID: "node-b", ttlMillis: 60_000)
            live = try await store.claim(.device("dev-1"), sessionID: sessionID, holder: b)
            live = try await store.claim(.device("dev-2"), sessionID: sessionID, holder: a)
            #expect(live.connectedDevices == ["dev-1", "dev-2"])
            #expect(try await store.liveNodes(["node-a", "node-b", "node-c"]) == ["node-a", "node-b"])

            // A release names its holder: a socket that closes after its successor claimed the
            // slot leaves the successor's claim alone.
            live = try await store.release(.desktop, sessionID: sessionID, holder: PresenceHolder(nodeID: "node-a", holderID: "socket-old"))
            #expect(live.desktopNode == "node-a")
            live = try await store.release(.desktop, sessionID: sessionID, holder: a)
            #expect(live.desktopNode == nil)
            #expect(!live.hasPendingJoin)
            live = try await store.claim(.pendingJoin, sessionID: sessionID, holder: b)
            #expect(live.hasPendingJoin && live.hasActiveParticipant)
            #expect(try await store.presence(sessionID: sessionID) == live)
            #expect(try await store.presence(sessionID: "session-nobody-0123") == SessionPresence())
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aLapsedLeaseTakesItsClaimsWithIt(_ kind: StoreKind) async throws {
        try await kind.withStore { store in
            let sessionID = "session-lapse-0123"
            _ = try await store.renewLease(nodeID: "node-killed", ttlMillis: 60_000)
            _ = try await store.renewLease(nodeID: "node-alive", ttlMillis: 60_000)
            _ = try await store.claim(.desktop, sessionID: sessionID, holder: PresenceHolder(nodeID: "node-killed", holderID: "d"))
            let both = try await store.claim(.device("dev-1"), sessionID: sessionID, holder: PresenceHolder(nodeID: "node-alive", holderID: "p"))
            #expect(both.desktopNode == "node-killed" && both.connectedDeviceCount == 1)
            // The node's last renewal runs out a millisecond later, and it renews no more: its
            // desktop is gone for everyone, the other node's phone stays.
            _ = try await store.renewLease(nodeID: "node-killed", ttlMillis: 1)
            let lapsed = await eventually(timeout: .seconds(30)) {
                (try? await store.presence(sessionID: sessionID))?.desktopNode == nil
            }
            #expect(lapsed)
            #expect(try await store.presence(sessionID: sessionID).connectedDevices == ["dev-1"])
            #expect(try await store.liveNodes(["node-killed", "node-alive"]) == ["node-alive"])
            // A node coming back finds its lease gone, which tells it to claim again.
            #expect(try await store.renewLease(nodeID: "node-killed", ttlMillis: 60_000) == false)
        }
    }
}

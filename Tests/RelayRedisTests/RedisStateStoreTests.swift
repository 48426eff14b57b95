import Foundation
import RelayCore
import RelayProtocol
import RelayTestSupport
import Testing

@testable import RelayRedis

/// What only the Redis store has: the reference key layout and JSON, tolerance of foreign
/// records, expiry, and writes from several nodes at once.
@Suite("RedisStateStore", .timeLimit(.minutes(2)))
struct RedisStateStoreTests {
    @Test func keysFollowTheReferenceLayout() async throws {
        try await RedisStoreFixture.with { fixture in
            let store = fixture.store
            #expect(store.indexKeyName == "\(fixture.prefix):sessions:index:v1")
            #expect(store.recordKey("abc") == "\(fixture.prefix):session:v1:abc")
            #expect(store.versionKey("abc") == "\(fixture.prefix):session:version:v1:abc")
            #expect(RedisStateStore.defaultKeyPrefix == "codexchat:remote-control:relay")

            try await store.save(Records.plain(), version: 12)
            #expect(try await fixture.raw.send("TYPE", store.indexKeyName) == .status("set"))
            #expect(try await fixture.raw.send("SMEMBERS", store.indexKeyName) == .array([.string(Array("session-0123456789".utf8))]))
            #expect(try await fixture.raw.send("TYPE", store.recordKey("session-0123456789")) == .status("string"))
            #expect(try await fixture.get(store.versionKey("session-0123456789")).text == "12")
            let keys = try await fixture.raw.send("KEYS", "\(fixture.prefix):*").array?.compactMap(\.text).sorted()
            // The reference layout, plus our token index (digest keys and the session's digest set).
            let tokenIndex = [store.tokenSetKey("session-0123456789"), store.tokenKeyPrefix + TokenDigest(of: "desktop-token-0123456789").hex]
            #expect(keys == ([store.indexKeyName, store.recordKey("session-0123456789"), store.versionKey("session-0123456789")] + tokenIndex).sorted())
        }
    }

    @Test func tokenDigestIsTheHexSHA256OfTheToken() {
        // FIPS 180-2 test vectors: one block, the empty message, and two blocks.
        #expect(TokenDigest(of: "abc").hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(TokenDigest(of: "").hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            TokenDigest(of: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hex
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func theTokenIndexFollowsEveryWriteAndHoldsNoToken() async throws {
        try await RedisStoreFixture.with { fixture in
            let store = fixture.store
            var record = Records.paired()
            try await store.save(record, version: 1)
            for token in ["desktop-token-0123456789", "device-token-0123456789", "retired-token-0123456789"] {
                #expect(try await store.sessionID(forToken: TokenDigest(of: token)) == "session-0123456789", "\(token)")
            }
            #expect(try await store.sessionID(forToken: "join-token-0123456789") == nil)
            #expect(try await store.sessionID(forToken: "never-issued-0123456789") == nil)

            // A rotation drops the old token's entry and adds the new one's.
            record.devices["dev_0123456789ab"]?.retiredTokens = []
            record.devices["dev_0123456789ab"]?.currentToken = "rotated-token-0123456789"
            #expect(try await store.compareAndSave(record, version: 2, expected: 1))
            #expect(try await store.sessionID(forToken: "rotated-token-0123456789") == "session-0123456789")
            #expect(try await store.sessionID(forToken: "device-token-0123456789") == nil)
            #expect(try await store.sessionID(forToken: "retired-token-0123456789") == nil)

            // Keys and values carry digests and ids, never a token.
            let keys = try await fixture.raw.send("KEYS", "\(fixture.prefix):*").array?.compactMap(\.text) ?? []
            for key in keys where key.contains(":token") {
                #expect(!key.contains("token-0123456789"), "\(key)")
                let value = try await fixture.raw.send("TYPE", key) == .status("set")
                    ? try await fixture.raw.send("SMEMBERS", key).array?.compactMap(\.text).joined(separator: ",") ?? ""
                    : try await fixture.get(key).text ?? ""
                #expect(!value.contains("token-0123456789"), "\(key) = \(value)")
            }

            // Deleting the session deletes its index.
            try await store.delete(sessionID: "session-0123456789", version: 3)
            #expect(try await store.sessionID(forToken: "rotated-token-0123456789") == nil)
            #expect(try await store.sessionID(forToken: "desktop-token-0123456789") == nil)
            let left = try await fixture.raw.send("KEYS", "\(fixture.prefix):*token*").array ?? []
            #expect(left.isEmpty, "\(left)")
        }
    }

    @Test func thePlainLayoutIsTheReferenceLayoutFieldByField() async throws {
        try await RedisStoreFixture.with { fixture in
            let store = RedisStateStore(connection: fixture.store.connection, keyPrefix: fixture.prefix, tokenStorage: .plain)
            let record = Records.paired()
            try await store.save(record, version: 1)
            guard case .string(let bytes) = try await fixture.get(store.recordKey(record.sessionID)) else {
                Issue.record("no record stored")
                return
            }
            let json = try JSONValue.parse(bytes)
            let object = try #require(json.objectValue)
            #expect(
                Set(object.keys) == [
                    "schema_version", "session_id", "join_token", "join_token_expires_at_ms", "join_token_used_at_ms",
                    "desktop_session_token", "relay_web_socket_url", "idle_timeout_seconds", "created_at_ms",
                    "last_activity_at_ms", "devices",
                ])
            #expect(object["schema_version"] == 1)
            #expect(object["session_id"] == "session-0123456789")
            #expect(object["join_token"] == "join-token-0123456789")
            #expect(object["join_token_expires_at_ms"] == 10_000)
            #expect(object["join_token_used_at_ms"] == 2_000)
            #expect(object["desktop_session_token"] == "desktop-token-0123456789")
            #expect(object["relay_web_socket_url"] == "ws://localhost:8787/ws")
            #expect(object["idle_timeout_seconds"] == 1800)
            #expect(object["created_at_ms"] == 1_000)
            #expect(object["last_activity_at_ms"] == 1_000)
            let devices = try #require(object["devices"]?.objectValue)
            #expect(Array(devices.keys) == ["dev_0123456789ab"])
            let device = try #require(devices["dev_0123456789ab"]?.objectValue)
            #expect(Set(device.keys) == ["current_session_token", "retired_session_tokens", "name", "joined_at_ms", "last_seen_at_ms"])
            #expect(device["current_session_token"] == "device-token-0123456789")
            #expect(device["retired_session_tokens"] == [["token": "retired-token-0123456789", "expires_at_ms": 40_000]])
            #expect(device["name"] == "Phone")
            #expect(device["joined_at_ms"] == 2_000)
            #expect(device["last_seen_at_ms"] == 3_000)
            // The reference's field order and compact form, byte for byte.
            let expected =
                #"{"schema_version":1,"session_id":"session-0123456789","join_token":"join-token-0123456789","#
                + #""join_token_expires_at_ms":10000,"join_token_used_at_ms":2000,"#
                + #""desktop_session_token":"desktop-token-0123456789","relay_web_socket_url":"ws://localhost:8787/ws","#
                + #""idle_timeout_seconds":1800,"created_at_ms":1000,"last_activity_at_ms":1000,"#
                + #""devices":{"dev_0123456789ab":{"current_session_token":"device-token-0123456789","#
                + #""retired_session_tokens":[{"token":"retired-token-0123456789","expires_at_ms":40000}],"#
                + #""name":"Phone","joined_at_ms":2000,"last_seen_at_ms":3000}}}"#
            #expect(String(decoding: bytes, as: UTF8.self) == expected)
        }
    }

    @Test func theDigestLayoutHoldsNoTokenAndReadsBackAsTheSameRecord() async throws {
        try await RedisStoreFixture.with { fixture in
            let record = Records.paired()
            try await fixture.store.save(record, version: 1)
            guard case .string(let bytes) = try await fixture.get(fixture.store.recordKey(record.sessionID)) else {
                Issue.record("no record stored")
                return
            }
            let text = String(decoding: bytes, as: UTF8.self)
            for token in ["join-token-0123456789", "desktop-token-0123456789", "device-token-0123456789", "retired-token-0123456789"] {
                #expect(!text.contains(token), "\(token) in \(text)")
            }
            let expected =
                #"{"schema_version":2,"session_id":"session-0123456789","#
                + #""join_token_sha256":"\#(TokenDigest(of: "join-token-0123456789").hex)","#
                + #""join_token_expires_at_ms":10000,"join_token_used_at_ms":2000,"#
                + #""desktop_session_token_sha256":"\#(TokenDigest(of: "desktop-token-0123456789").hex)","#
                + #""relay_web_socket_url":"ws://localhost:8787/ws","#
                + #""idle_timeout_seconds":1800,"created_at_ms":1000,"last_activity_at_ms":1000,"#
                + #""devices":{"dev_0123456789ab":{"current_session_token_sha256":"\#(TokenDigest(of: "device-token-0123456789").hex)","#
                + #""retired_session_tokens":[{"token_sha256":"\#(TokenDigest(of: "retired-token-0123456789").hex)","expires_at_ms":40000}],"#
                + #""name":"Phone","joined_at_ms":2000,"last_seen_at_ms":3000}}}"#
            #expect(text == expected)
            let loaded = try #require(try await fixture.store.load(sessionID: record.sessionID).record)
            #expect(loaded == record)
            #expect(!loaded.knowsEveryTokenInClear)
            #expect(loaded.devices["dev_0123456789ab"]?.accepts(TokenDigest(of: "retired-token-0123456789"), now: 39_999) == true)
        }
    }

    /// The pairing's trace context is ours: kept in our layout, left out of the reference's.
    @Test func thePairingTraceContextIsKeptInTheDigestLayoutOnly() throws {
        var record = Records.plain()
        record.pairingTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        let digest = SessionRecordJSON.encode(record)
        #expect(String(decoding: digest, as: UTF8.self).contains(#","pairing_traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","devices""#))
        #expect(try SessionRecordJSON.decode(digest) == SessionRecord(
            sessionID: record.sessionID, joinToken: StoredToken(digest: record.joinToken.digest), joinTokenExpiresAtMillis: 10_000,
            desktopSessionToken: StoredToken(digest: record.desktopSessionToken.digest), relayWebSocketURL: record.relayWebSocketURL,
            idleTimeoutSeconds: 1800, createdAtMillis: 1_000, lastActivityAtMillis: 1_000, pairingTraceparent: record.pairingTraceparent))
        let plain = SessionRecordJSON.encode(record, layout: .plain)
        #expect(!String(decoding: plain, as: UTF8.self).contains("traceparent"))
        #expect(try SessionRecordJSON.decode(plain).pairingTraceparent == nil)
    }

    /// Extension 10: a device's grant is durable, and one that cannot be read fails the record
    /// instead of reading as full access.
    @Test func aDevicesGrantRoundTripsAndAnUnreadableOneIsRefused() throws {
        var record = Records.paired()
        record.devices["dev_0123456789ab"]?.grant = DeviceGrant(scope: .view, allowedCommands: ["thread.select"], expiresAtMillis: 90_000)
        let bytes = SessionRecordJSON.encode(record)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""last_seen_at_ms":3000,"scope":"view","allowed_commands":["thread.select"],"grant_expires_at_ms":90000}"#))
        #expect(try SessionRecordJSON.decode(bytes).devices["dev_0123456789ab"]?.grant == record.devices["dev_0123456789ab"]?.grant)
        let broken = text.replacingOccurrences(of: #""scope":"view""#, with: #""scope":"admin""#)
        #expect(throws: SessionRecordJSON.DecodingError.self) { try SessionRecordJSON.decode(Array(broken.utf8)) }
        // A device without a grant is written exactly as before.
        #expect(!String(decoding: SessionRecordJSON.encode(Records.paired()), as: UTF8.self).contains("scope"))
    }

    @Test func aPlainRecordIsReadByADigestStoreAndRewrittenAsDigests() async throws {
        try await RedisStoreFixture.with { fixture in
            let plain = RedisStateStore(connection: fixture.store.connection, keyPrefix: fixture.prefix, tokenStorage: .plain)
            let record = Records.paired()
            try await plain.save(record, version: 1)
            let read = try #require(try await fixture.store.load(sessionID: record.sessionID).record)
            #expect(read == record)
            // Read by a digest node, the tokens are digests only, and its next write stores digests.
            #expect(read.desktopSessionToken.clear == nil)
            #expect(try await fixture.store.compareAndSave(read, version: 2, expected: 1))
            let text = try await fixture.get(fixture.store.recordKey(record.sessionID)).text ?? ""
            #expect(text.hasPrefix(#"{"schema_version":2,"#))
            #expect(!text.contains("token-0123456789"))
            // A plain node reads the digest record too (and cannot write tokens it does not know).
            let back = try #require(try await plain.load(sessionID: record.sessionID).record)
            #expect(back == read)
            try await plain.save(back, version: 3)
            #expect(try await fixture.get(fixture.store.recordKey(record.sessionID)).text?.hasPrefix(#"{"schema_version":2,"#) == true)
        }
    }

    @Test func anUnusedJoinTokenIsStoredAsNull() async throws {
        try await RedisStoreFixture.with { fixture in
            try await fixture.store.save(Records.plain(), version: 1)
            let reply = try await fixture.get(fixture.store.recordKey("session-0123456789"))
            let object = try #require(try JSONValue.parse(reply.text ?? "").objectValue)
            #expect(object["join_token_used_at_ms"] == .null)
            #expect(object["devices"] == .object([:]))
        }
    }

    @Test func aRecordWrittenInTheReferenceLayoutLoads() async throws {
        try await RedisStoreFixture.with { fixture in
            let store = fixture.store
            // As another relay writes it: other key order, whitespace, an unknown key, a null
            // used-at, a device without retired_session_tokens.
            let json = """
                { "devices": { "dev_x": { "name": "Pixel", "current_session_token": "tok-x", "joined_at_ms": 5,
                  "last_seen_at_ms": 6, "platform": "android" } },
                  "last_activity_at_ms": 4, "created_at_ms": 3, "idle_timeout_seconds": 18446744073709551615,
                  "relay_web_socket_url": "wss://relay.example/ws", "desktop_session_token": "desk",
                  "join_token_used_at_ms": null, "join_token_expires_at_ms": -9223372036854775808,
                  "join_token": "join", "session_id": "session-reference", "schema_version": 1, "future": [1, 2] }
                """
            _ = try await fixture.raw.send("SET", store.recordKey("session-reference"), json)
            _ = try await fixture.raw.send("SET", store.versionKey("session-reference"), "41")
            _ = try await fixture.raw.send("SADD", store.indexKeyName, "session-reference")
            let expected = SessionRecord(
                sessionID: "session-reference", joinToken: "join", joinTokenExpiresAtMillis: .min, joinTokenUsedAtMillis: nil,
                desktopSessionToken: "desk", relayWebSocketURL: "wss://relay.example/ws", idleTimeoutSeconds: .max,
                createdAtMillis: 3, lastActivityAtMillis: 4,
                devices: [
                    "dev_x": DeviceRecord(
                        deviceID: "dev_x", currentToken: "tok-x", retiredTokens: [], name: "Pixel", joinedAtMillis: 5,
                        lastSeenAtMillis: 6)
                ])
            #expect(try await store.load(sessionID: "session-reference") == StoredSession(record: expected, version: 41))
            let all = try await store.loadAll()
            #expect(all.map(\.record) == [expected])
            #expect(all.map(\.version) == [41])

            // A record without a version key (written by hand) loads at version 0; a missing
            // used-at is the same as null.
            let bare = #"{"schema_version":1,"session_id":"session-bare","join_token":"j","join_token_expires_at_ms":1,"#
                + #""desktop_session_token":"d","relay_web_socket_url":"u","idle_timeout_seconds":0,"created_at_ms":0,"#
                + #""last_activity_at_ms":0,"devices":{}}"#
            _ = try await fixture.raw.send("SET", store.recordKey("session-bare"), bare)
            let loaded = try await store.load(sessionID: "session-bare")
            #expect(loaded.version == 0)
            #expect(loaded.record?.joinTokenUsedAtMillis == nil)
            #expect(loaded.record?.devices.isEmpty == true)
        }
    }

    @Test func unreadableRecordsAreSkippedNotFatal() async throws {
        try await RedisStoreFixture.with { fixture in
            let store = fixture.store
            try await store.save(Records.plain("session-good"), version: 1)
            let good = String(decoding: SessionRecordJSON.encode(Records.plain("session-other"), layout: .plain), as: UTF8.self)
            let digests = String(decoding: SessionRecordJSON.encode(Records.plain("session-other")), as: UTF8.self)
            let bad: [(String, String)] = [
                ("session-malformed", #"{"schema_version":1,"session_id":"#),
                ("session-schema-3", good.replacingFirst(#""schema_version":1"#, with: #""schema_version":3"#)),
                // Tokens in the digest schema, and digests in the plain one: each is refused.
                ("session-schema-2-plain", good.replacingFirst(#""schema_version":1"#, with: #""schema_version":2"#)),
                ("session-schema-1-digests", digests.replacingFirst(#""schema_version":2"#, with: #""schema_version":1"#)),
                ("session-short-digest", digests.replacingFirst(#"_sha256":""#, with: #"_sha256":"ab"#)),
                ("session-no-schema", good.replacingFirst(#""schema_version":1,"#, with: "")),
                ("session-wrong-type", good.replacingFirst(#""idle_timeout_seconds":1800"#, with: #""idle_timeout_seconds":"1800""#)),
                ("session-float", good.replacingFirst(#""created_at_ms":1000"#, with: #""created_at_ms":1000.0"#)),
                ("session-negative-u64", good.replacingFirst(#""idle_timeout_seconds":1800"#, with: #""idle_timeout_seconds":-1"#)),
                ("session-no-devices", good.replacingFirst(#","devices":{}"#, with: "")),
                ("session-not-object", "[1,2,3]"),
                ("session-not-utf8", "\u{FFFD}"),
                ("session-other-id", good),  // stored under a key that is not its session_id
            ]
            for (id, json) in bad {
                _ = try await fixture.raw.send("SET", store.recordKey(id), json)
                _ = try await fixture.raw.send("SET", store.versionKey(id), "3")
                _ = try await fixture.raw.send("SADD", store.indexKeyName, id)
            }
            _ = try await fixture.raw.send([Array("SET".utf8), Array(store.recordKey("session-not-utf8").utf8), [0xFF, 0xFE, 0x7B]])
            let all = try await store.loadAll()
            #expect(all.map(\.record.sessionID) == ["session-good"])
            for (id, _) in bad {
                #expect(try await store.load(sessionID: id) == StoredSession(record: nil, version: 3), "\(id)")
            }
            // Skipped, not pruned: they still exist, only expiry removes them.
            #expect(try await fixture.raw.send("SCARD", store.indexKeyName) == .integer(Int64(bad.count + 1)))
        }
    }

    @Test func recordsExpireAfterTheRetentionOrTheTrustedTTL() async throws {
        try await RedisStoreFixture.with(sessionRetentionMillis: 600_000, trustedSessionTTLMillis: 2_592_000_000) { fixture in
            let store = fixture.store
            try await store.save(Records.plain("session-unpaired"), version: 1)
            try await store.save(Records.paired("session-paired"), version: 1)
            for key in [store.recordKey("session-unpaired"), store.versionKey("session-unpaired")] {
                #expect((590_000...600_000).contains(try await fixture.pttl(key)), "\(key)")
            }
            for key in [store.recordKey("session-paired"), store.versionKey("session-paired")] {
                #expect((2_591_990_000...2_592_000_000).contains(try await fixture.pttl(key)), "\(key)")
            }
            // The index never expires.
            #expect(try await fixture.pttl(store.indexKeyName) == -1)
            // Pairing a device extends the record's life; compareAndSave sets the TTL as save does.
            #expect(try await store.compareAndSave(Records.paired("session-unpaired"), version: 2, expected: 1))
            #expect((2_591_990_000...2_592_000_000).contains(try await fixture.pttl(store.recordKey("session-unpaired"))))
            #expect((2_591_990_000...2_592_000_000).contains(try await fixture.pttl(store.versionKey("session-unpaired"))))
        }
    }

    @Test func keepAliveRefreshesBothKeys() async throws {
        try await RedisStoreFixture.with(sessionRetentionMillis: 60_000, trustedSessionTTLMillis: 3_600_000) { fixture in
            let store = fixture.store
            try await store.save(Records.plain("session-unpaired"), version: 1)
            try await store.save(Records.paired("session-paired"), version: 1)
            // Shortened, not to the edge of expiry: on a busy machine the keys must still exist when
            // the keep-alive runs.
            for id in ["session-unpaired", "session-paired"] {
                for key in [store.recordKey(id), store.versionKey(id)] { _ = try await fixture.raw.send("PEXPIRE", key, "20000") }
            }
            try await store.keepAlive([Records.plain("session-unpaired"), Records.paired("session-paired")])
            for key in [store.recordKey("session-unpaired"), store.versionKey("session-unpaired")] {
                #expect((50_000...60_000).contains(try await fixture.pttl(key)), "\(key)")
            }
            for key in [store.recordKey("session-paired"), store.versionKey("session-paired")] {
                #expect((3_590_000...3_600_000).contains(try await fixture.pttl(key)), "\(key)")
            }
        }
    }

    @Test func aDeletedSessionKeepsItsVersionForTheRetentionPeriod() async throws {
        try await RedisStoreFixture.with(sessionRetentionMillis: 120_000, trustedSessionTTLMillis: 3_600_000) { fixture in
            let store = fixture.store
            try await store.save(Records.paired(), version: 5)
            try await store.delete(sessionID: "session-0123456789", version: 6)
            #expect(try await fixture.get(store.recordKey("session-0123456789")) == .null)
            #expect(try await fixture.get(store.versionKey("session-0123456789")).text == "6")
            #expect((110_000...120_000).contains(try await fixture.pttl(store.versionKey("session-0123456789"))))
            #expect(try await fixture.raw.send("SISMEMBER", store.indexKeyName, "session-0123456789") == .integer(0))
        }
    }

    @Test func expiredRecordsArePrunedFromTheIndexByLoadAll() async throws {
        try await RedisStoreFixture.with(sessionRetentionMillis: 100, trustedSessionTTLMillis: 3_600_000) { fixture in
            let store = fixture.store
            try await store.save(Records.plain("session-short-lived"), version: 1)
            try await store.save(Records.paired("session-trusted"), version: 1)
            #expect(try await fixture.raw.send("SCARD", store.indexKeyName) == .integer(2))
            try await Task.sleep(for: .milliseconds(250))
            #expect(try await store.load(sessionID: "session-short-lived") == StoredSession(record: nil, version: 0))
            let all = try await store.loadAll()
            #expect(all.map(\.record.sessionID) == ["session-trusted"])
            #expect(try await fixture.raw.send("SMEMBERS", store.indexKeyName) == .array([.string(Array("session-trusted".utf8))]))
        }
    }

    @Test func versionsCompareExactlyBeyondDoublePrecision() async throws {
        try await RedisStoreFixture.with { fixture in
            let store = fixture.store
            let big: UInt64 = 9_007_199_254_740_993  // 2^53 + 1; a double rounds it to 2^53
            try await store.save(Records.plain(joinToken: "join-newer"), version: big)
            try await store.save(Records.plain(joinToken: "join-older"), version: big - 1)
            #expect(try await store.load(sessionID: "session-0123456789") == StoredSession(record: Records.plain(joinToken: "join-newer"), version: big))
            #expect(try await !store.compareAndSave(Records.plain(joinToken: "join-cas"), version: big + 1, expected: big - 1))
            #expect(try await store.compareAndSave(Records.plain(joinToken: "join-cas"), version: .max, expected: big))
            try await store.delete(sessionID: "session-0123456789", version: .max - 1)
            #expect(try await store.load(sessionID: "session-0123456789").version == .max)
            // A version of another width (more digits) compares by value, not as text.
            try await store.save(Records.plain("session-width", joinToken: "join-10"), version: 10)
            try await store.save(Records.plain("session-width", joinToken: "join-9"), version: 9)
            #expect(try await store.load(sessionID: "session-width").record?.joinToken == "join-10")
        }
    }

    @Test func nodesRacingOnOneVersionThroughSeparateConnectionsHaveOneWinner() async throws {
        try await RedisStoreFixture.with { fixture in
            var nodes: [RedisStateStore] = []
            for _ in 0..<4 {
                nodes.append(RedisStateStore(connection: try await TestRedis.connect(), keyPrefix: fixture.prefix))
            }
            try await fixture.store.save(Records.plain(), version: 1)
            let wins = try await withThrowingTaskGroup(of: Int.self) { group in
                for attempt in 0..<40 {
                    let node = nodes[attempt % nodes.count]
                    group.addTask {
                        var record = Records.plain()
                        record.joinTokenUsedAtMillis = Int64(attempt)
                        return try await node.compareAndSave(record, version: 2, expected: 1) ? 1 : 0
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(wins == 1)
            for node in nodes { await node.connection.shutdown() }
        }
    }

    @Test func storeCallsFailWhileRedisIsDown() async throws {
        try await RedisServerProcess.with { server in
            let connection = try await TestRedis.connect(server.url)
            let store = RedisStateStore(connection: connection, keyPrefix: TestRedis.uniquePrefix())
            try await store.save(Records.plain(), version: 1)
            server.stop()
            #expect(await eventually(timeout: .seconds(5)) { !connection.isAvailable })
            await #expect(throws: RedisError(.unavailable, "not connected to Redis")) { try await store.save(Records.plain(), version: 2) }
            await #expect(throws: RedisError.self) { try await store.load(sessionID: "session-0123456789") }
            await #expect(throws: RedisError.self) { try await store.loadAll() }
            await #expect(throws: RedisError.self) { try await store.compareAndSave(Records.plain(), version: 2, expected: 1) }
            await #expect(throws: RedisError.self) { try await store.delete(sessionID: "session-0123456789", version: 2) }
            await #expect(throws: RedisError.self) { try await store.keepAlive([Records.plain()]) }
            await connection.shutdown()
        }
    }
}

extension String {
    /// The string with the first occurrence of `target` replaced (the test must find it).
    fileprivate func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = firstRange(of: target) else {
            Issue.record("'\(target)' not found in \(self)")
            return self
        }
        var copy = self
        copy.replaceSubrange(range, with: replacement)
        return copy
    }
}

import RelayTestClient
import Synchronization
import Testing

/// A phone app stores its credentials whenever they change and resumes from them after a restart
/// (PROTOCOL §4.4: the token rotates on every successful connection).
@Suite("Phone credentials", .timeLimit(.minutes(2)))
struct PhoneCredentialsTests {
    @Test func everyRotationIsReportedAndAPhoneRestartedFromStoredCredentialsReconnects() async throws {
        try await withRelay { relay in
            let stored = Mutex<[RelayPhoneCredentials]>([])
            let phone = RelayPhone(baseURL: relay.baseURL, origin: "http://localhost:4173") { credentials in
                stored.withLock { $0.append(credentials) }
            }
            let paired = try await RelayPairing.pairConnected(desktop: RelayDesktop(baseURL: relay.baseURL), phone: phone)
            // The join, then the first connection's rotation.
            let afterPairing = stored.withLock { $0 }
            try #require(afterPairing.count == 2)
            #expect(afterPairing[0].deviceSessionToken != afterPairing[1].deviceSessionToken)
            #expect(afterPairing[1] == phone.credentials)
            #expect(afterPairing[1].deviceID == paired.phoneAuthOK["deviceID"]?.stringValue)
            #expect(!afterPairing[1].description.contains(afterPairing[1].deviceSessionToken))

            try await phone.reconnect()
            let latest = try #require(stored.withLock { $0.last })
            #expect(stored.withLock { $0.count } == 3)
            #expect(latest.deviceSessionToken == phone.deviceSessionToken)
            await phone.disconnect()

            // The app is restarted: a new phone from what it stored reconnects, and rotates again.
            let restartedReports = Mutex<[RelayPhoneCredentials]>([])
            let restarted = RelayPhone(baseURL: relay.baseURL, credentials: latest, origin: "http://localhost:4173") { credentials in
                restartedReports.withLock { $0.append(credentials) }
            }
            let authOK = try await restarted.connect()
            #expect(authOK["type"]?.stringValue == "auth_ok")
            #expect(authOK["deviceID"]?.stringValue == latest.deviceID)
            let rotated = try #require(restartedReports.withLock { $0.first })
            #expect(rotated.deviceSessionToken != latest.deviceSessionToken)
            #expect(rotated.sessionID == latest.sessionID)
            await restarted.disconnect()
            await paired.desktop.disconnect()
        }
    }
}

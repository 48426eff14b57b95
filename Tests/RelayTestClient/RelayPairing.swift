// The whole pairing flow (PROTOCOL §3) in one call, for tests and the load harness.

import NIOCore
import NIOPosix
import RelayProtocol

/// A desktop and a phone, paired and both authenticated, with what happened on the way.
package struct RelayPairedSession: Sendable {
    /// The desktop, connected (its socket is ``RelayDesktop/socket``).
    package let desktop: RelayDesktop
    /// The phone, joined and connected (its socket is ``RelayPhone/socket``).
    package let phone: RelayPhone
    /// The desktop's `auth_ok`.
    package let desktopAuthOK: JSONValue
    /// The `relay.pair_request` the desktop approved.
    package let pairRequest: RelayPairRequest
    /// The 200 response of `/pair/join`.
    package let joinResponse: RelayHTTPResponse
    /// The phone's `auth_ok`.
    package let phoneAuthOK: JSONValue
    /// Every event read from the desktop socket after approving, in order: normally
    /// `relay.pair_result` then `relay.device_count` (pings and pongs included if any arrived).
    package let drainedDesktopEvents: [RelayWebSocketEvent]

    /// The drained desktop text frames parsed as JSON (non-JSON text is skipped).
    package var drainedDesktopFrames: [JSONValue] {
        drainedDesktopEvents.compactMap { $0.text.flatMap { try? JSONValue.parse($0) } }
    }

    /// The drained `relay.pair_result`, if it arrived.
    package var pairResult: JSONValue? { drainedDesktopFrames.first { $0.type == "relay.pair_result" } }

    /// The drained `relay.device_count`, if it arrived.
    package var deviceCount: JSONValue? { drainedDesktopFrames.first { $0.type == "relay.device_count" } }
}

/// The pairing flow as one call.
package enum RelayPairing {
    /// Pairs a new desktop and phone and connects both.
    ///
    /// `/pair/start` → desktop connect (`auth_ok`) → `/pair/join` in parallel with waiting for the
    /// desktop's `relay.pair_request` → approve → join must return 200 → phone connect (`auth_ok`).
    /// Then the desktop socket is drained: until both `relay.pair_result` and `relay.device_count`
    /// have been read (waiting at most `settleTimeout`), then until it is idle for `drainIdle`. So the
    /// next read on either socket sees only new frames.
    ///
    /// - Parameters:
    ///   - origin: The phone's `Origin` (the desktop sends none).
    ///   - deviceName: The `deviceName` of the join, or `nil` for none.
    ///   - timeout: Bound on each step (HTTP call, auth, waiting for the pair request).
    /// - Throws: ``RelayClientError/unexpectedStatus(operation:status:body:)`` when `/pair/start` or
    ///   `/pair/join` is not 200, and whatever the steps throw. Sockets opened so far are closed.
    package static func pairConnected(
        baseURL: String,
        origin: String? = "http://localhost:4173",
        deviceName: String? = "Relay Test iPhone",
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: Duration = .seconds(30),
        settleTimeout: Duration = .seconds(5),
        drainIdle: Duration = .milliseconds(50)
    ) async throws -> RelayPairedSession {
        try await pairConnected(
            desktop: RelayDesktop(baseURL: baseURL, eventLoopGroup: eventLoopGroup),
            phone: RelayPhone(baseURL: baseURL, origin: origin, eventLoopGroup: eventLoopGroup),
            deviceName: deviceName, timeout: timeout, settleTimeout: settleTimeout, drainIdle: drainIdle)
    }

    /// The same flow for a desktop and a phone that may talk to different relay nodes: `/pair/start`
    /// goes to the desktop's `baseURL`, `/pair/join` to the phone's, and each socket to
    /// `desktopSocketURL` / `phoneSocketURL` (default: the `wsURL` the relay returned).
    /// `idleTimeoutSeconds` goes into `/pair/start` when given; `decisionFields` into the
    /// desktop's approval (a grant, extension 10).
    package static func pairConnected(
        desktop: RelayDesktop,
        phone: RelayPhone,
        desktopSocketURL: String? = nil,
        phoneSocketURL: String? = nil,
        deviceName: String? = "Relay Test iPhone",
        idleTimeoutSeconds: Int? = nil,
        decisionFields: [String: JSONValue] = [:],
        timeout: Duration = .seconds(30),
        settleTimeout: Duration = .seconds(5),
        drainIdle: Duration = .milliseconds(50)
    ) async throws -> RelayPairedSession {
        do {
            let start = try await desktop.startPairing(idleTimeoutSeconds: idleTimeoutSeconds)
            guard start.status == 200 else {
                throw RelayClientError.unexpectedStatus(operation: "POST /pair/start", status: start.status, body: start.bodyText)
            }
            let desktopAuthOK = try await desktop.connect(url: desktopSocketURL, authTimeout: timeout)

            let (pairRequest, joinResponse) = try await approveJoin(
                desktop: desktop,
                phone: phone,
                deviceName: deviceName,
                decisionFields: decisionFields,
                timeout: timeout
            )
            let phoneAuthOK = try await phone.connect(url: phoneSocketURL, authTimeout: timeout)
            let drained = try await drainAfterPairing(try desktop.socket, settleTimeout: settleTimeout, idle: drainIdle)
            return RelayPairedSession(
                desktop: desktop,
                phone: phone,
                desktopAuthOK: desktopAuthOK,
                pairRequest: pairRequest,
                joinResponse: joinResponse,
                phoneAuthOK: phoneAuthOK,
                drainedDesktopEvents: drained
            )
        } catch {
            await phone.disconnect()
            await desktop.disconnect()
            throw error
        }
    }

    /// Pairs one more phone with a desktop that is already paired and connected (the desktop's
    /// "Add device"): `/pair/refresh` for a fresh join token, then `/pair/join` approved over the
    /// desktop's socket, then the phone connects. Frames the desktop receives meanwhile are left
    /// unread for the caller, except the pair request.
    ///
    /// - Returns: The phone's `auth_ok`.
    @discardableResult
    package static func addPhone(
        to desktop: RelayDesktop,
        phone: RelayPhone,
        phoneSocketURL: String? = nil,
        deviceName: String? = "Relay Test iPhone",
        timeout: Duration = .seconds(30)
    ) async throws -> JSONValue {
        let refresh = try await desktop.refreshJoinToken()
        guard refresh.status == 200 else {
            throw RelayClientError.unexpectedStatus(operation: "POST /pair/refresh", status: refresh.status, body: refresh.bodyText)
        }
        _ = try await approveJoin(desktop: desktop, phone: phone, deviceName: deviceName, timeout: timeout)
        return try await phone.connect(url: phoneSocketURL, authTimeout: timeout)
    }

    /// ``pairConnected(baseURL:origin:deviceName:eventLoopGroup:timeout:settleTimeout:drainIdle:)``
    /// returning just the two roles.
    package static func pair(
        baseURL: String,
        origin: String? = "http://localhost:4173",
        deviceName: String? = "Relay Test iPhone",
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> (RelayDesktop, RelayPhone) {
        let session = try await pairConnected(baseURL: baseURL, origin: origin, deviceName: deviceName, eventLoopGroup: eventLoopGroup)
        return (session.desktop, session.phone)
    }

    private enum JoinStep: Sendable {
        case joined(RelayHTTPResponse)
        case approved(RelayPairRequest)
    }

    /// Runs `/pair/join` and the desktop's wait-and-approve side by side. A join that fails before
    /// any pair request arrives (403, 409, …) ends the wait at once instead of after `timeout`.
    private static func approveJoin(
        desktop: RelayDesktop,
        phone: RelayPhone,
        deviceName: String?,
        decisionFields: [String: JSONValue] = [:],
        timeout: Duration
    ) async throws -> (RelayPairRequest, RelayHTTPResponse) {
        let sessionID = desktop.sessionID
        let joinToken = desktop.joinToken
        return try await withThrowingTaskGroup(of: JoinStep.self) { group in
            group.addTask {
                .joined(try await phone.join(sessionID: sessionID, joinToken: joinToken, deviceName: deviceName, timeout: timeout + .seconds(5)))
            }
            group.addTask {
                let request = try await desktop.nextPairRequest(timeout: timeout)
                try await desktop.decide(requestID: request.requestID, approved: true, fields: decisionFields)
                return .approved(request)
            }
            var pairRequest: RelayPairRequest?
            var joinResponse: RelayHTTPResponse?
            while let step = try await group.next() {
                switch step {
                case .joined(let response):
                    guard response.status == 200 else {
                        // Leaving the group by throwing cancels the desktop's wait.
                        throw RelayClientError.unexpectedStatus(operation: "POST /pair/join", status: response.status, body: response.bodyText)
                    }
                    joinResponse = response
                case .approved(let request):
                    pairRequest = request
                }
            }
            guard let pairRequest, let joinResponse else {
                throw RelayClientError.notReady("pairing finished without both a pair request and a join response")
            }
            return (pairRequest, joinResponse)
        }
    }

    private static func drainAfterPairing(
        _ socket: RelayWebSocket,
        settleTimeout: Duration,
        idle: Duration
    ) async throws -> [RelayWebSocketEvent] {
        var events: [RelayWebSocketEvent] = []
        var sawResult = false
        var sawCount = false
        let deadline = ContinuousClock.now + settleTimeout
        while !(sawResult && sawCount) {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero, let event = try await socket.next(timeout: remaining) else { break }
            events.append(event)
            if case .text(let text) = event, let type = (try? JSONValue.parse(text))?.type {
                if type == "relay.pair_result" { sawResult = true }
                if type == "relay.device_count" { sawCount = true }
            }
            if event.isTermination { return events }
        }
        events += try await socket.drain(idle: idle)
        return events
    }
}

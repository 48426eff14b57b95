// What the node tells clients about where it is: the default wsURL and the origins it allows.

import Synchronization

/// The default `wsURL` and the allowed-origin set. Both come from the configuration, and both can
/// follow the listener once it is bound when the configuration left the port to the system
/// (`PORT=0` without `PUBLIC_BASE_URL`): until then they name port 0.
final class PublicAddress: Sendable {
    private let state: Mutex<(webSocketURL: String, origins: OriginPolicy)>

    init(_ configuration: CoreConfiguration) {
        state = Mutex((configuration.defaultWebSocketURL, configuration.origins))
    }

    /// The `wsURL` a session gets when its desktop names none.
    var defaultWebSocketURL: String { state.withLock { $0.webSocketURL } }

    /// The origins HTTP requests and phone sockets may come from.
    var origins: OriginPolicy { state.withLock { $0.origins } }

    func update(defaultWebSocketURL: String, origins: OriginPolicy?) {
        state.withLock { state in
            state.webSocketURL = defaultWebSocketURL
            if let origins { state.origins = origins }
        }
    }
}

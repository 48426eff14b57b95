// What a NATSClusterBus needs to know: servers, subjects, signing and replay limits.

/// Settings of a ``NATSClusterBus`` (PROTOCOL §6.3–§6.5, §8).
public struct NATSClusterBusConfiguration: Sendable {
    /// The default `NATS_SUBJECT_PREFIX`.
    public static let defaultSubjectPrefix = "codexchat.remote.relay"

    /// Servers and credentials (`NATS_URL`).
    public var servers: NATSServerList
    /// Subjects are `<prefix>.session.<sessionID>` and `<prefix>.control` (`NATS_SUBJECT_PREFIX`).
    public var subjectPrefix: String
    /// `NATS_HMAC_SECRET`, trimmed; nil runs unsigned (no signature, time or nonce checks).
    public var secret: String?
    /// `NATS_HMAC_PREVIOUS_SECRET`, trimmed: also accepted when verifying, never used to sign. For
    /// rotating the secret in a running cluster, three rollouts (Runbooks/secret-rotation.md):
    /// every node keeps signing with the old secret and accepts the new one as previous; then every
    /// node signs with the new one and accepts the old one; then the previous is removed.
    public var previousSecret: String?
    /// `NATS_REPLAY_WINDOW_MS`: the oldest signed envelope accepted.
    public var replayWindowMillis: Int64
    /// `NATS_MAX_CLOCK_SKEW_MS`: how far in the future a signed envelope may be dated.
    public var maxClockSkewMillis: Int64
    /// PEM file of the CAs trusted for `tls://` servers; nil uses the system's.
    public var tlsCAFile: String?
    /// The connection name shown by the NATS server's monitoring.
    public var connectionName: String
    /// The wait between two attempts on the same server; libnats adds up to `reconnectJitterMillis`.
    public var reconnectWaitMillis: Int64
    /// Upper bound of the random delay added to each reconnect wait.
    public var reconnectJitterMillis: Int64

    /// Settings from an already parsed server list. `secret` and `previousSecret` are trimmed;
    /// empty means none.
    public init(
        servers: NATSServerList,
        subjectPrefix: String = NATSClusterBusConfiguration.defaultSubjectPrefix,
        secret: String? = nil,
        previousSecret: String? = nil,
        replayWindowMillis: Int64 = 120_000,
        maxClockSkewMillis: Int64 = 30_000,
        tlsCAFile: String? = nil,
        connectionName: String = "relay",
        reconnectWaitMillis: Int64 = 250,
        reconnectJitterMillis: Int64 = 250
    ) {
        self.servers = servers
        self.subjectPrefix = subjectPrefix
        self.secret = nonEmptyTrimmed(secret)
        self.previousSecret = nonEmptyTrimmed(previousSecret)
        self.replayWindowMillis = replayWindowMillis
        self.maxClockSkewMillis = maxClockSkewMillis
        self.tlsCAFile = tlsCAFile
        self.connectionName = connectionName
        self.reconnectWaitMillis = reconnectWaitMillis
        self.reconnectJitterMillis = reconnectJitterMillis
    }

    /// Settings from a `NATS_URL` text (see ``NATSServerList/init(parsing:)``).
    public init(
        url: String,
        subjectPrefix: String = NATSClusterBusConfiguration.defaultSubjectPrefix,
        secret: String? = nil,
        previousSecret: String? = nil,
        replayWindowMillis: Int64 = 120_000,
        maxClockSkewMillis: Int64 = 30_000,
        tlsCAFile: String? = nil
    ) throws(NATSConfigurationError) {
        self.init(
            servers: try NATSServerList(parsing: url), subjectPrefix: subjectPrefix, secret: secret,
            previousSecret: previousSecret, replayWindowMillis: replayWindowMillis,
            maxClockSkewMillis: maxClockSkewMillis, tlsCAFile: tlsCAFile)
    }

    /// Checks what the bus relies on: a subject prefix NATS accepts (dot-separated tokens without
    /// spaces or wildcards), positive windows, a previous secret only beside a current one.
    public func validate() throws(NATSConfigurationError) {
        guard !subjectPrefix.isEmpty,
            subjectPrefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ isSubjectToken($0) })
        else {
            throw NATSConfigurationError(
                "NATS_SUBJECT_PREFIX \"\(subjectPrefix)\" is not a NATS subject: use dot-separated tokens without spaces, \"*\" or \">\"")
        }
        guard replayWindowMillis > 0 else { throw NATSConfigurationError("NATS_REPLAY_WINDOW_MS must be greater than 0.") }
        guard maxClockSkewMillis > 0 else { throw NATSConfigurationError("NATS_MAX_CLOCK_SKEW_MS must be greater than 0.") }
        guard previousSecret == nil || secret != nil else {
            throw NATSConfigurationError("NATS_HMAC_PREVIOUS_SECRET is set without NATS_HMAC_SECRET")
        }
        guard !servers.servers.isEmpty else { throw NATSConfigurationError("NATS_URL names no server") }
        guard reconnectWaitMillis >= 0, reconnectJitterMillis >= 0 else {
            throw NATSConfigurationError("NATS reconnect wait and jitter must not be negative")
        }
    }
}

/// True when `token` can be one token of a NATS subject: non-empty, printable ASCII without
/// `.`, `*`, `>` or whitespace.
func isSubjectToken(_ token: some StringProtocol) -> Bool {
    guard !token.isEmpty else { return false }
    return token.utf8.allSatisfy { byte in
        byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: ".") && byte != UInt8(ascii: "*") && byte != UInt8(ascii: ">")
    }
}

private func nonEmptyTrimmed(_ text: String?) -> String? {
    guard let text else { return nil }
    let trimmed = text.trimmingWhitespace()
    return trimmed.isEmpty ? nil : trimmed
}

extension String {
    /// The string without leading and trailing Unicode white space (as Rust's `str::trim`).
    func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return String(self[first...last])
    }
}

extension NATSClusterBusConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Every setting, with the secrets shown only as set or not.
    public var description: String {
        "NATSClusterBusConfiguration(servers: \(servers), subjectPrefix: \(subjectPrefix), "
            + "secret: \(secret == nil ? "none" : "***"), previousSecret: \(previousSecret == nil ? "none" : "***"), "
            + "replayWindowMillis: \(replayWindowMillis), maxClockSkewMillis: \(maxClockSkewMillis), "
            + "tlsCAFile: \(tlsCAFile ?? "none"), connectionName: \(connectionName), "
            + "reconnectWaitMillis: \(reconnectWaitMillis), reconnectJitterMillis: \(reconnectJitterMillis))"
    }

    /// Same as ``description``.
    public var debugDescription: String { description }

    /// The masked description instead of the stored secrets.
    public var customMirror: Mirror { Mirror(self, children: ["configuration": description], displayStyle: .struct) }
}

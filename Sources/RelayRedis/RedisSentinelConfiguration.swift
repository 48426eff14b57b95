// Where Redis Sentinel runs and which master it is asked for.

/// The Sentinels that know the master (`REDIS_SENTINELS`) and the master's name
/// (`REDIS_SENTINEL_MASTER`). With it, a connection asks them where the master is before every
/// connect, and follows a failover.
public struct RedisSentinelConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// One Sentinel's address.
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        /// Host name or IP literal (without brackets).
        public var host: String
        /// TCP port.
        public var port: Int
        /// `host:port`, IPv6 literals in brackets.
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Sentinel's default port.
    public static let defaultPort = 26379
    /// The default master name.
    public static let defaultMasterName = "relay"

    /// The Sentinels, asked in this order (the last one that answered first).
    public var sentinels: [Address]
    /// The name the Sentinels monitor the master under.
    public var masterName: String

    /// Parses `host:port` entries separated by commas (a missing port is 26379; IPv6 literals in
    /// brackets).
    public init(parsing list: String, masterName: String = RedisSentinelConfiguration.defaultMasterName) throws(RedisURLError) {
        var sentinels: [Address] = []
        for raw in list.split(separator: ",") {
            let entry = raw.trimmingCharacters(in: " \t")
            guard !entry.isEmpty else { continue }
            var host = entry, port = Self.defaultPort
            if entry.hasPrefix("[") {
                guard let close = entry.firstIndex(of: "]") else { throw RedisURLError(.badSentinels, "entry \(entry) has an unclosed [") }
                host = String(entry[entry.index(after: entry.startIndex)..<close])
                let rest = entry[entry.index(after: close)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()) else { throw RedisURLError(.badSentinels, "entry \(entry) has a bad port") }
                    port = p
                }
            } else if let colon = entry.lastIndex(of: ":") {
                host = String(entry[..<colon])
                guard let p = Int(entry[entry.index(after: colon)...]) else { throw RedisURLError(.badSentinels, "entry \(entry) has a bad port") }
                port = p
            }
            guard !host.isEmpty else { throw RedisURLError(.badSentinels, "entry \(entry) has no host") }
            guard (1...65535).contains(port) else { throw RedisURLError(.badSentinels, "entry \(entry): port \(port) is out of range") }
            sentinels.append(Address(host: host, port: port))
        }
        guard !sentinels.isEmpty else { throw RedisURLError(.badSentinels, "no Sentinel named") }
        let name = masterName.trimmingCharacters(in: " \t")
        guard !name.isEmpty, !name.contains(" ") else { throw RedisURLError(.badSentinels, "the master name must be one word") }
        self.sentinels = sentinels
        self.masterName = name
    }

    /// `sentinel://host:port,host:port/<master>`.
    public var description: String { "sentinel://\(sentinels.map(\.description).joined(separator: ","))/\(masterName)" }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let skip = Set(set)
        return String(drop { skip.contains($0) }.reversed().drop { skip.contains($0) }.reversed())
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String { self[...].trimmingCharacters(in: set) }
}

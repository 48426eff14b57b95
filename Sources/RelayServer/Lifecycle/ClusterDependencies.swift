// The Redis connection and the NATS bus a cluster node is configured with.

import Logging
import RelayCore
import RelayNATS
import RelayProtocol
import RelayRedis

/// The Redis connection and the NATS bus a cluster node runs on, built from its configuration.
/// Neither is required to answer at start (DECISIONS 6): both connect and reconnect in the
/// background with backoff, and `/readyz` says not ready until both answer.
struct ClusterDependencies: Sendable {
    var redis: RedisConnection?
    /// Record writes' own connection when they wait for replicas (`REDIS_MIN_REPLICAS_ACK`).
    var redisWrites: RedisConnection?
    var store: RedisStateStore?
    var bus: NATSClusterBus?

    static func make(_ configuration: RelayConfiguration, logger: Logger) -> ClusterDependencies {
        var dependencies = ClusterDependencies()
        if let url = configuration.redis {
            // A WAIT holds the connection for up to its timeout: the command timeout must outlast it.
            var connection = RedisConnection.Configuration()
            connection.commandTimeout = max(connection.commandTimeout, .milliseconds(configuration.redisWaitTimeoutMillis + 1000))
            let redis = RedisConnection(url: url, sentinel: configuration.redisSentinel, configuration: connection, logger: logger)
            dependencies.redis = redis
            if configuration.redisMinReplicasAck > 0 {
                dependencies.redisWrites = redis.sibling()
            }
            dependencies.store = RedisStateStore(
                connection: redis, keyPrefix: configuration.redisKeyPrefix,
                sessionRetentionMillis: configuration.core.sessionRetentionMillis,
                trustedSessionTTLMillis: configuration.core.trustedSessionTTLMillis, tokenStorage: configuration.redisTokenStorage,
                minReplicasAck: configuration.redisMinReplicasAck, waitTimeoutMillis: configuration.redisWaitTimeoutMillis,
                writeConnection: dependencies.redisWrites, logger: logger)
        }
        if let nats = configuration.nats {
            if nats.secret == nil {
                logger.warning("nats_unsigned: NATS_HMAC_SECRET is not set; cross-node envelopes are neither signed nor checked")
            }
            dependencies.bus = NATSClusterBus(configuration: nats, logger: logger)
        }
        return dependencies
    }

    /// Makes readiness reflect each configured dependency.
    func register(with health: HealthState) {
        if let redis {
            let writes = redisWrites
            health.addDependency("redis") { redis.isAvailable && writes?.isAvailable ?? true }
            if let sentinel = redis.sentinelConfiguration {
                health.addDetail("redisSentinel") {
                    var fields: [String: JSONValue] = [
                        "masterName": .string(sentinel.masterName), "masterChanges": .number(JSONNumber(redis.masterChanges)),
                    ]
                    if let master = redis.sentinelMaster { fields["master"] = .string(master) }
                    return .object(fields)
                }
            }
        }
        if let bus { health.addDependency("nats") { bus.isConnected } }
    }
}

// The Lua scripts of the cluster's presence: claims that live as long as their node's lease.

/// Presence scripts. A session's claims are one HASH, `<prefix>:presence:v1:<sessionID>`: field
/// `desktop`, `device:<deviceID>` or `join`, value `<nodeID> <holderID>`. A claim counts only while
/// `<prefix>:node:v1:<nodeID>` exists: that key is the node's lease, set with `PX
/// PRESENCE_TTL_MS` and renewed by the node. Every script answers with the live claims as a flat
/// array (field, holder, field, holder…) and deletes the claims of nodes whose lease is gone.
enum RedisPresenceScripts {
    /// KEYS[1]: the presence hash. ARGV[#ARGV]: the lease key prefix. Returns the live claims.
    private static let liveClaims = """
        local function liveClaims(leasePrefix)
          local live = {}
          local alive = {}
          local entries = redis.call('HGETALL', KEYS[1])
          for i = 1, #entries, 2 do
            local field, holder = entries[i], entries[i + 1]
            local node = string.match(holder, '^(%S+) ')
            local ok = false
            if node then
              if alive[node] == nil then alive[node] = redis.call('EXISTS', leasePrefix .. node) == 1 end
              ok = alive[node]
            end
            if ok then
              live[#live + 1] = field
              live[#live + 1] = holder
            else
              redis.call('HDEL', KEYS[1], field)
            end
          end
          return live
        end

        """

    /// ARGV: field, holder, lease prefix, expiry of the hash (ms). Sets the claim.
    static let claim = Array(
        (liveClaims + """
            redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
            redis.call('PEXPIRE', KEYS[1], ARGV[4])
            return liveClaims(ARGV[3])
            """).utf8)

    /// ARGV: field, holder, lease prefix. Clears the claim if `holder` still holds it.
    static let release = Array(
        (liveClaims + """
            if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
            return liveClaims(ARGV[3])
            """).utf8)

    /// ARGV: lease prefix.
    static let read = Array(
        (liveClaims + """
            return liveClaims(ARGV[1])
            """).utf8)

    /// KEYS[1]: the node's lease. ARGV: TTL (ms). Returns 1 if the lease existed (was renewed), 0
    /// if it was created.
    static let renewLease = Array(
        """
        local existed = redis.call('EXISTS', KEYS[1])
        redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
        return existed
        """.utf8)
}

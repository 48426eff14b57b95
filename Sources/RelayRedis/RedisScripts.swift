// The Redis state store's Lua scripts: every write of a session is one of them, atomic.

/// The store's Lua scripts. Versions are compared as decimal strings, so every `UInt64` compares
/// exactly (Lua numbers are doubles).
enum RedisScripts {
    /// KEYS: record, version, index, token set. ARGV: session id, then the script's own arguments.
    private static let prelude = """
        local function canonical(v)
          if not v or not string.match(v, '^%d+$') then return '0' end
          local trimmed = string.gsub(v, '^0+', '')
          if trimmed == '' then return '0' end
          return trimmed
        end
        local function greater(a, b)
          if #a ~= #b then return #a > #b end
          return a > b
        end
        -- The token index: ARGV[first] is the key prefix, the digests follow. Entries of digests
        -- the record no longer has are deleted; the rest point at this session until its expiry.
        local function indexTokens(first, ttl)
          local prefix = ARGV[first]
          local keep = {}
          for i = first + 1, #ARGV do keep[ARGV[i]] = true end
          for _, digest in ipairs(redis.call('SMEMBERS', KEYS[4])) do
            if not keep[digest] then redis.call('DEL', prefix .. digest) end
          end
          redis.call('DEL', KEYS[4])
          for i = first + 1, #ARGV do
            redis.call('SET', prefix .. ARGV[i], ARGV[1], 'PX', ttl)
            redis.call('SADD', KEYS[4], ARGV[i])
          end
          if #ARGV > first then redis.call('PEXPIRE', KEYS[4], ttl) end
        end

        """

    /// ARGV: id, version, json, ttl, token key prefix, digests. Applies iff the stored version is
    /// absent or <= version.
    static let save = Array(
        (prelude + """
            local stored = redis.call('GET', KEYS[2])
            if stored and greater(canonical(stored), canonical(ARGV[2])) then return 0 end
            redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
            redis.call('SADD', KEYS[3], ARGV[1])
            redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
            indexTokens(5, ARGV[4])
            return 1
            """).utf8)

    /// ARGV: id, version, json, ttl, expected, token key prefix, digests. Applies iff the stored
    /// version (absent = 0) is exactly `expected`.
    static let compareAndSave = Array(
        (prelude + """
            if canonical(redis.call('GET', KEYS[2])) ~= canonical(ARGV[5]) then return 0 end
            redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
            redis.call('SADD', KEYS[3], ARGV[1])
            redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
            indexTokens(6, ARGV[4])
            return 1
            """).utf8)

    /// ARGV: id, version, ttl of the kept version key, token key prefix. Applies iff the stored
    /// version is absent or <= version; the session's token index goes with it.
    static let delete = Array(
        (prelude + """
            local stored = redis.call('GET', KEYS[2])
            if stored and greater(canonical(stored), canonical(ARGV[2])) then return 0 end
            redis.call('DEL', KEYS[1])
            redis.call('SREM', KEYS[3], ARGV[1])
            redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
            indexTokens(4, ARGV[3])
            return 1
            """).utf8)

    /// KEYS: index, then one record key per id. ARGV: the ids. Removes an id only while its record
    /// is absent.
    static let pruneIndex = Array(
        """
        local removed = 0
        for i, id in ipairs(ARGV) do
          if redis.call('EXISTS', KEYS[i + 1]) == 0 then
            removed = removed + redis.call('SREM', KEYS[1], id)
          end
        end
        return removed
        """.utf8)
}

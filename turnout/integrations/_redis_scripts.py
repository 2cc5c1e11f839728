"""The Lua scripts of ``turnout.integrations.redis.RedisStore``: one per store operation, so
each runs atomically on the server (see that module's docstring for the keys they touch)."""

__all__ = ["SCRIPTS"]

# HMGET in chunks: unpack() of a long list would overflow Lua's C stack.
_FETCH = """
local function fetch(hash, ids)
  local out = {}
  for i = 1, #ids, 1000 do
    local chunk = {}
    for j = i, math.min(i + 999, #ids) do chunk[#chunk + 1] = ids[j] end
    local values = redis.call('HMGET', hash, unpack(chunk))
    for k = 1, #values do out[#out + 1] = values[k] end
  end
  return out
end
"""

# KEYS: meta. ARGV: the version this code writes. Returns the stored version; an older one
# (readable by this code, see the module docstring) is raised to ARGV[1], so older code stops
# writing.
_SETUP = """
redis.call('HSETNX', KEYS[1], 'schema', ARGV[1])
local stored = redis.call('HGET', KEYS[1], 'schema')
if string.match(stored, '^%d+$') and tonumber(stored) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'schema', ARGV[1])
end
return stored
"""

# KEYS: ids, snapshots, records, apps of the partition, partitions, where of the app, latest of
# the partition. ARGV: sequence id, previous ('' for none), kind, record, app row ('' for none),
# app id, partition key. Returns 1; 0 when the insert would break the app's history; 2 when the
# app has no row (it was deleted) and none is given.
_INSERT = """
local known = redis.call('HEXISTS', KEYS[4], ARGV[6]) == 1
if not known and ARGV[5] == '' then return 2 end
local latest = redis.call('HGET', KEYS[7], ARGV[6])
if not latest then
  local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #last > 0 then latest = last[2] end
end
if latest then
  latest = tonumber(latest)
  if latest >= tonumber(ARGV[1]) then return 0 end
  if ARGV[2] ~= '' and latest ~= tonumber(ARGV[2]) then return 0 end
elseif ARGV[2] ~= '' then
  return 0
end
if not known then
  redis.call('HSET', KEYS[4], ARGV[6], ARGV[5])
  redis.call('SADD', KEYS[5], ARGV[7])
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
if ARGV[3] == 'snapshot' then redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1]) end
redis.call('SADD', KEYS[6], ARGV[7])
redis.call('HSET', KEYS[7], ARGV[6], ARGV[1])
return 1
"""

# KEYS: ids, snapshots, records. ARGV: the sequence id ('' for the latest).
_CHAIN = (
    _FETCH
    + """
local target = ARGV[1]
if target == '' then
  local last = redis.call('ZREVRANGE', KEYS[1], 0, 0)
  if #last == 0 then return {} end
  target = last[1]
elseif not redis.call('ZSCORE', KEYS[1], target) then
  return {}
end
local snapshot = redis.call('ZREVRANGEBYSCORE', KEYS[2], target, '-inf', 'LIMIT', 0, 1)
local low = '-inf'
if #snapshot > 0 then low = snapshot[1] end
return fetch(KEYS[3], redis.call('ZRANGEBYSCORE', KEYS[1], low, target))
"""
)

# KEYS: ids, records.
_RECORDS = _FETCH + "return fetch(KEYS[2], redis.call('ZRANGE', KEYS[1], 0, -1))"

# KEYS: ids, snapshots, records. ARGV: sequence id, kind, record.
_REWRITE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
if ARGV[2] == 'snapshot' then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
"""

# KEYS: ids, snapshots, records. ARGV: sequence ids. Returns how many were stored.
_REMOVE = """
local removed = 0
for i = 1, #ARGV do
  removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
return removed
"""

# KEYS: ids, snapshots, records, apps of the partition, partitions, where of the app, latest of
# the partition. ARGV: app id, partition key. Returns the number of records removed.
_DELETE = """
local removed = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[7], ARGV[1])
if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('SREM', KEYS[5], ARGV[2]) end
redis.call('SREM', KEYS[6], ARGV[2])
return removed
"""

# The journal (turnout.core.journal): a hash per step, index -> entry (JSON), and a sorted set
# per app of the sequence ids that have one. Step hashes are named from ARGV (prefix .. sequence
# id) where a script walks an app's steps: one Redis server, as for the records.

# KEYS: the app's journal index, the step's hash. ARGV: sequence id, call index, entry. Returns
# 1; 0 when the step already has an entry at that index.
_JOURNAL_RECORD = """
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
return 1
"""

# KEYS: the app's journal index. ARGV: the step hashes' prefix, then sequence ids.
_JOURNAL_REMOVE = """
for i = 2, #ARGV do
  redis.call('DEL', ARGV[1] .. ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return 1
"""

# KEYS: the app's journal index. ARGV: the step hashes' prefix.
_JOURNAL_DELETE = """
for _, s in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do redis.call('DEL', ARGV[1] .. s) end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: the parent's journal index, the fork's. ARGV: the parent's step-hash prefix, the fork's,
# the last sequence id to copy ('' for all). Entries the fork already has are kept.
_JOURNAL_COPY = """
local last = ARGV[3]
if last == '' then last = '+inf' end
for _, s in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', last)) do
  local fields = redis.call('HGETALL', ARGV[1] .. s)
  for i = 1, #fields, 2 do redis.call('HSETNX', ARGV[2] .. s, fields[i], fields[i + 1]) end
  redis.call('ZADD', KEYS[2], s, s)
end
return 1
"""

SCRIPTS = {
    "journal_record": _JOURNAL_RECORD,
    "journal_remove": _JOURNAL_REMOVE,
    "journal_delete": _JOURNAL_DELETE,
    "journal_copy": _JOURNAL_COPY,
    # KEYS: a step's journal hash.
    "journal_entries": "return redis.call('HGETALL', KEYS[1])",
    "setup": _SETUP,
    "insert": _INSERT,
    "chain": _CHAIN,
    "records": _RECORDS,
    "rewrite": _REWRITE,
    "remove": _REMOVE,
    "delete": _DELETE,
    # KEYS: apps, latest of the partition. ARGV: app id.
    "app": "return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}",
    # KEYS: apps, latest of the partition.
    "apps": "return {redis.call('HVALS', KEYS[1]), redis.call('HGETALL', KEYS[2])}",
    "members": "return redis.call('SMEMBERS', KEYS[1])",
    "exists": "return redis.call('EXISTS', KEYS[1])",
}

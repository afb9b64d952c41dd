//! The Lua scripts: each runs as one atomic step on the server, so reading a
//! value and writing what depends on it (a sequence number, a read
//! position) cannot interleave with another client. `EVALSHA` after the
//! first call; the driver loads a script again after a server restart.
//!
//! Scripts derive a few keys from values (`mqtt:msg:<msgid>` from a sorted
//! set member): fine on a single server or a Sentinel group, which is what
//! this crate supports (the seed's layout has no Cluster hash tags).

use std::sync::LazyLock;

use redis::Script;

/// Stores a batch of messages.
///
/// KEYS: `mqtt:msg_seq`, `mqtt:msg_topics`, then per message its hash
/// `mqtt:msg:<id>` and its topic's set `mqtt:msg:<topic>`.
/// ARGV: expiry seconds, the `mqtt:msg:` prefix, then per message the seven
/// hash values (id, from, qos, topic, retain, payload, ts).
///
/// Per message: a message id stored before on another topic leaves that
/// topic's set; the counter gives the next score; the hash is replaced and
/// expires after the expiry; the topic's set gets the id and lives at least
/// as long as it; the topic joins the index. Types are checked first, so a
/// key of the wrong type fails the batch before anything is written.
pub(crate) static STORE_MESSAGES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local ttl = tonumber(ARGV[1])
local n = (#KEYS - 2) / 2
for i = 1, n do
  local ht = redis.call('TYPE', KEYS[1 + 2 * i])['ok']
  local zt = redis.call('TYPE', KEYS[2 + 2 * i])['ok']
  if (ht ~= 'none' and ht ~= 'hash') or (zt ~= 'none' and zt ~= 'zset') then
    return redis.error_reply('WRONGTYPE ' .. KEYS[1 + 2 * i] .. ' must be a hash and ' .. KEYS[2 + 2 * i] .. ' a sorted set')
  end
end
for i = 1, n do
  local h, z = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local b = 2 + 7 * (i - 1)
  local id, topic = ARGV[b + 1], ARGV[b + 4]
  local old = redis.call('HGET', h, 'topic')
  if old and old ~= topic then
    local oz = ARGV[2] .. old
    if redis.call('TYPE', oz)['ok'] == 'zset' then
      redis.call('ZREM', oz, id)
      if redis.call('EXISTS', oz) == 0 then redis.call('ZREM', KEYS[2], old) end
    end
  end
  local seq = redis.call('INCR', KEYS[1])
  redis.call('DEL', h)
  redis.call('HSET', h, 'id', id, 'from', ARGV[b + 2], 'qos', ARGV[b + 3], 'topic', topic,
    'retain', ARGV[b + 5], 'payload', ARGV[b + 6], 'ts', ARGV[b + 7])
  redis.call('EXPIRE', h, ttl)
  redis.call('ZADD', z, seq, id)
  if redis.call('TTL', z) < ttl then redis.call('EXPIRE', z, ttl) end
  redis.call('ZADD', KEYS[2], 0, topic)
end
return n
"#,
    )
});

/// Fetches offline messages.
///
/// KEYS: the start key `mqtt:acked:<client>:<filter>`, `mqtt:msg_seq`,
/// `mqtt:msg_topics`, then per matching topic its set `mqtt:msg:<topic>` and
/// its read position `mqtt:acked:<client>:<topic>`.
/// ARGV: `queue` or `pubsub`, since (Unix milliseconds, or empty), max count
/// (or empty), the `mqtt:msg:` prefix, then the topics.
///
/// Pubsub: without a start key the start is set to the counter's current
/// value and nothing is returned. Otherwise a topic's floor is the larger of
/// the start and the topic's read position, and its members scored above
/// the floor are the candidates (queue mode: all members). Candidates are
/// read newest first until `max` are kept, skipping those older than `since`
/// and removing members whose hash expired (or now belongs to another
/// topic). Returns, newest first, per message: the member id and the seven
/// hash values.
pub(crate) static FETCH_MESSAGES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local pubsub = ARGV[1] == 'pubsub'
local since = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local floorN, floorS = nil, nil
if pubsub then
  local s = redis.call('GET', KEYS[1])
  if not s then
    redis.call('SET', KEYS[1], redis.call('GET', KEYS[2]) or '0')
    return {}
  end
  if tonumber(s) then floorN, floorS = tonumber(s), s end
end
local cands = {}
local ntopics = #ARGV - 4
for i = 1, ntopics do
  local z, a = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local fN, fS = floorN, floorS
  if pubsub then
    local v = redis.call('GET', a)
    local vn = tonumber(v)
    if vn and (not fN or vn > fN) then fN, fS = vn, v end
  end
  local min = '-inf'
  if fS then min = '(' .. fS end
  local r = redis.call('ZRANGEBYSCORE', z, min, '+inf', 'WITHSCORES')
  if #r == 0 and redis.call('EXISTS', z) == 0 then
    redis.call('ZREM', KEYS[3], ARGV[4 + i])
  end
  for j = 1, #r, 2 do cands[#cands + 1] = { tonumber(r[j + 1]), i, r[j] } end
end
table.sort(cands, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[3] < y[3]) end)
local out = {}
local kept = 0
for k = #cands, 1, -1 do
  if max and kept >= max then break end
  local c = cands[k]
  local topic = ARGV[4 + c[2]]
  local v = redis.call('HMGET', ARGV[4] .. c[3], 'id', 'from', 'qos', 'topic', 'retain', 'payload', 'ts')
  if v[4] ~= topic then
    redis.call('ZREM', KEYS[2 + 2 * c[2]], c[3])
  elseif not since or (tonumber(v[7]) or 0) * 1000 >= since then
    kept = kept + 1
    out[#out + 1] = c[3]
    for f = 1, 7 do out[#out + 1] = v[f] or '' end
  end
end
return out
"#,
    )
});

/// Pubsub acks: per ack, the read position becomes the larger of itself and
/// the acked message's score (unknown messages change nothing).
///
/// KEYS: per ack `mqtt:msg:<topic>` and `mqtt:acked:<client>:<topic>`.
/// ARGV: per ack the message id.
pub(crate) static ACK_PUBSUB: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for i = 1, #ARGV do
  local s = redis.call('ZSCORE', KEYS[2 * i - 1], ARGV[i])
  if s then
    local cur = tonumber(redis.call('GET', KEYS[2 * i]))
    if not cur or cur < tonumber(s) then redis.call('SET', KEYS[2 * i], s) end
  end
end
return #ARGV
"#,
    )
});

/// Queue acks: per ack, deletes the message hash and its set member (of the
/// acked topic, and of the topic the hash names if another); a set left
/// empty leaves the index.
///
/// KEYS: `mqtt:msg_topics`, then per ack `mqtt:msg:<id>` and
/// `mqtt:msg:<topic>`. ARGV: the `mqtt:msg:` prefix, then per ack the id and
/// the topic.
pub(crate) static ACK_QUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = (#KEYS - 1) / 2
for i = 1, n do
  local h, z = KEYS[2 * i], KEYS[2 * i + 1]
  local id, topic = ARGV[2 * i], ARGV[2 * i + 1]
  local real = false
  if redis.call('TYPE', h)['ok'] == 'hash' then
    real = redis.call('HGET', h, 'topic')
    redis.call('DEL', h)
  end
  if redis.call('TYPE', z)['ok'] == 'zset' then
    redis.call('ZREM', z, id)
  end
  if redis.call('EXISTS', z) == 0 then redis.call('ZREM', KEYS[1], topic) end
  if real and real ~= topic then
    local rz = ARGV[1] .. real
    if redis.call('TYPE', rz)['ok'] == 'zset' then
      redis.call('ZREM', rz, id)
      if redis.call('EXISTS', rz) == 0 then redis.call('ZREM', KEYS[1], real) end
    end
  end
end
return n
"#,
    )
});

/// A client came online: its hash is replaced (state 1, online_at,
/// offline_at `undefined`, node), it joins its node's hash and leaves the
/// hash of the node it was on before, if another.
///
/// KEYS: `mqtt:client:<id>`, `mqtt:node:<node>`. ARGV: client id, Unix
/// seconds, node, the `mqtt:node:` prefix.
pub(crate) static CLIENT_ONLINE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('TYPE', KEYS[1])['ok'] == 'hash' then
  local old = redis.call('HGET', KEYS[1], 'node')
  if old and old ~= ARGV[3] and redis.call('TYPE', ARGV[4] .. old)['ok'] == 'hash' then
    redis.call('HDEL', ARGV[4] .. old, ARGV[1])
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', '1', 'online_at', ARGV[2], 'offline_at', 'undefined', 'node', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"#,
    )
});

/// Removes retained-index entries whose hash is gone (deleted by hand).
///
/// KEYS: `mqtt:retain_topics`, then per topic `mqtt:retain:<topic>`.
/// ARGV: the topics.
pub(crate) static CLEAN_RETAIN_INDEX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for i = 1, #ARGV do
  if redis.call('EXISTS', KEYS[1 + i]) == 0 then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return #ARGV
"#,
    )
});

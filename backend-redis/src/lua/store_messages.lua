-- Stores a batch of messages. KEYS[1] the sequence counter, KEYS[2] the
-- topic index; then per message its hash and its topic's sorted set.
-- ARGV[1] the expiry in seconds, ARGV[2] the message key prefix; then per
-- message id, from, qos, topic, retain, payload, ts, props (empty: none).
-- A message costs one HSET and one EXPIRE; the rest (the sorted set's ZADD,
-- trimming, expiry, the index) is done once per topic, not once per message.
local ttl = tonumber(ARGV[1])
local n = (#KEYS - 2) / 2
-- Only the sorted sets are checked before writing: a hash of the wrong
-- type fails its HSET below, and the engine then stores the batch's other
-- messages again one by one (storing an id again is harmless).
local checked = {}
for i = 1, n do
  local z = KEYS[2 + 2 * i]
  if not checked[z] then
    local zt = redis.call('TYPE', z)['ok']
    if zt ~= 'none' and zt ~= 'zset' then
      return redis.error_reply('WRONGTYPE ' .. z .. ' must be a sorted set')
    end
    checked[z] = true
  end
end
-- One sequence range for the whole batch, in slice order.
local base = redis.call('INCRBY', KEYS[1], n) - n
local topics, members = {}, {}
for i = 1, n do
  local h, z = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local b = 2 + 8 * (i - 1)
  local id, props = ARGV[b + 1], ARGV[b + 8]
  -- Stored again, the new copy replaces the old one's fields. HSET counts
  -- the fields it added, so fewer than it wrote means the hash was there: a
  -- `props` the new copy lacks must go. If the id was stored under another
  -- topic, that topic's set keeps a member whose hash names a different
  -- topic; every reader skips and removes such members.
  if props ~= '' then
    redis.call('HSET', h, 'id', id, 'from', ARGV[b + 2], 'qos', ARGV[b + 3], 'topic', ARGV[b + 4],
      'retain', ARGV[b + 5], 'payload', ARGV[b + 6], 'ts', ARGV[b + 7], 'props', props)
  elseif redis.call('HSET', h, 'id', id, 'from', ARGV[b + 2], 'qos', ARGV[b + 3], 'topic', ARGV[b + 4],
      'retain', ARGV[b + 5], 'payload', ARGV[b + 6], 'ts', ARGV[b + 7]) < 7 then
    redis.call('HDEL', h, 'props')
  end
  redis.call('EXPIRE', h, ttl)
  local m = members[z]
  if not m then
    m = {}
    members[z] = m
    topics[#topics + 1] = { ARGV[b + 4], z }
  end
  m[#m + 1] = base + i
  m[#m + 1] = id
end
for _, t in ipairs(topics) do
  local topic, z = t[1], t[2]
  local m = members[z]
  -- One ZADD per topic (in slices that stay within Lua's stack). An id
  -- twice in the batch keeps its later score: ZADD applies pairs in order.
  for s = 1, #m, 2000 do
    redis.call('ZADD', z, unpack(m, s, math.min(s + 1999, #m)))
  end
  -- Members whose hash expired go from the front of the set as new ones
  -- come (up to four per message stored), so a topic published to and
  -- never fetched stays bounded.
  for _ = 1, 2 * #m do
    local first = redis.call('ZRANGE', z, 0, 0)
    if #first == 0 or redis.call('HGET', ARGV[2] .. first[1], 'topic') == topic then break end
    redis.call('ZREM', z, first[1])
  end
  if redis.call('TTL', z) < ttl then redis.call('EXPIRE', z, ttl) end
  redis.call('ZADD', KEYS[2], 0, topic)
end
return n

-- Stores a batch of messages. KEYS[1] the sequence counter, KEYS[2] the
-- topic index; then per message its hash and its topic's sorted set.
-- ARGV[1] the expiry in seconds, ARGV[2] the message key prefix; then per
-- message id, from, qos, topic, retain, payload, ts, props (empty: none).
-- Work per topic (trimming, expiry, the index) is done once per call, not
-- once per message, so a batch costs about four commands a message.
local ttl = tonumber(ARGV[1])
local n = (#KEYS - 2) / 2
-- Only the sorted sets are checked before writing: a hash of the wrong
-- type fails its HGET below, and the engine then stores the batch's other
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
local topics, per_topic = {}, {}
for i = 1, n do
  local h, z = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local b = 2 + 8 * (i - 1)
  local id, topic = ARGV[b + 1], ARGV[b + 4]
  local old = redis.call('HGET', h, 'topic')
  if old then
    -- Stored again: the new copy replaces it (and moves to the end).
    if old ~= topic then
      local oz = ARGV[2] .. old
      if redis.call('TYPE', oz)['ok'] == 'zset' then
        redis.call('ZREM', oz, id)
        if redis.call('EXISTS', oz) == 0 then redis.call('ZREM', KEYS[2], old) end
      end
    end
    redis.call('DEL', h)
  end
  redis.call('HSET', h, 'id', id, 'from', ARGV[b + 2], 'qos', ARGV[b + 3], 'topic', topic,
    'retain', ARGV[b + 5], 'payload', ARGV[b + 6], 'ts', ARGV[b + 7])
  if ARGV[b + 8] ~= '' then redis.call('HSET', h, 'props', ARGV[b + 8]) end
  redis.call('EXPIRE', h, ttl)
  redis.call('ZADD', z, base + i, id)
  if not per_topic[topic] then
    per_topic[topic] = 0
    topics[#topics + 1] = { topic, z }
  end
  per_topic[topic] = per_topic[topic] + 1
end
for _, t in ipairs(topics) do
  local topic, z = t[1], t[2]
  -- Members whose hash expired go from the front of the set as new ones
  -- come (up to four per message stored), so a topic published to and
  -- never fetched stays bounded.
  for _ = 1, 4 * per_topic[topic] do
    local first = redis.call('ZRANGE', z, 0, 0)
    if #first == 0 or redis.call('HGET', ARGV[2] .. first[1], 'topic') == topic then break end
    redis.call('ZREM', z, first[1])
  end
  if redis.call('TTL', z) < ttl then redis.call('EXPIRE', z, ttl) end
  redis.call('ZADD', KEYS[2], 0, topic)
end
return n

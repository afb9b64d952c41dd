-- Redis Cluster: stores a batch of messages whose keys share one slot.
-- KEYS: per message its hash, then its topic's sorted set (the hash is the
-- set's name, ':' and the id). ARGV[1] the expiry in seconds; then per
-- message its score (the writer's clock in microseconds, rising through
-- the batch) and id, from, qos, topic, retain, payload, ts, props (empty:
-- none). A score never
-- falls below its set's last one plus one, so store order is kept per
-- topic even if a writer's clock is behind another's.
local ttl = tonumber(ARGV[1])
local n = #KEYS / 2
for i = 1, n do
  local zt = redis.call('TYPE', KEYS[2 * i])['ok']
  if zt ~= 'none' and zt ~= 'zset' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[2 * i] .. ' must be a sorted set')
  end
end
local last, stored, sets = {}, {}, {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 2 + 9 * (i - 1)
  if last[z] == nil then
    local top = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
    last[z] = tonumber(top[2]) or 0
    stored[z] = 0
    sets[#sets + 1] = z
  end
  local score = math.max(tonumber(ARGV[b]), last[z] + 1)
  last[z] = score
  -- Stored again: the new copy replaces it (and moves to the end).
  redis.call('DEL', h)
  redis.call('HSET', h, 'id', ARGV[b + 1], 'from', ARGV[b + 2], 'qos', ARGV[b + 3],
    'topic', ARGV[b + 4], 'retain', ARGV[b + 5], 'payload', ARGV[b + 6], 'ts', ARGV[b + 7])
  if ARGV[b + 8] ~= '' then redis.call('HSET', h, 'props', ARGV[b + 8]) end
  redis.call('EXPIRE', h, ttl)
  redis.call('ZADD', z, string.format('%.0f', score), ARGV[b + 1])
  stored[z] = stored[z] + 1
end
for _, z in ipairs(sets) do
  -- Members whose hash expired leave the front of the set as new ones come.
  for _ = 1, 4 * stored[z] do
    local first = redis.call('ZRANGE', z, 0, 0)
    if #first == 0 or redis.call('EXISTS', z .. ':' .. first[1]) == 1 then break end
    redis.call('ZREM', z, first[1])
  end
  if redis.call('TTL', z) < ttl then redis.call('EXPIRE', z, ttl) end
end
return n

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
  -- Members whose hash expired go from the front of the set as new ones
  -- come, so a topic published to and never fetched stays bounded.
  for _ = 1, 4 do
    local first = redis.call('ZRANGE', z, 0, 0)
    if #first == 0 or redis.call('HGET', ARGV[2] .. first[1], 'topic') == topic then break end
    redis.call('ZREM', z, first[1])
  end
  if redis.call('TTL', z) < ttl then redis.call('EXPIRE', z, ttl) end
  redis.call('ZADD', KEYS[2], 0, topic)
end
return n

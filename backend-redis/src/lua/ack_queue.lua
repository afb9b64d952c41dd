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

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

-- Redis Cluster: queue acks whose keys share one slot. KEYS: per ack the
-- message hash, then its topic's sorted set. ARGV: per ack the message id.
for i = 1, #ARGV do
  redis.call('DEL', KEYS[2 * i - 1])
  if redis.call('TYPE', KEYS[2 * i])['ok'] == 'zset' then
    redis.call('ZREM', KEYS[2 * i], ARGV[i])
  end
end
return #ARGV

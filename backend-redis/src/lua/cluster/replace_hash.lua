-- Redis Cluster: replaces a hash. KEYS[1] the hash; ARGV its field/value
-- pairs (a key of another type is replaced too).
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1

-- Redis Cluster: a pubsub subscription's start. KEYS[1] the start key,
-- ARGV[1] the writer's clock in microseconds. The first call sets the key
-- to it and returns {value, 1}; later calls return {stored value, 0}.
local s = redis.call('GET', KEYS[1])
if s then return { s, 0 } end
redis.call('SET', KEYS[1], ARGV[1])
return { ARGV[1], 1 }

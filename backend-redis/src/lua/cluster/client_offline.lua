-- Redis Cluster: a client went offline. KEYS[1] its hash; ARGV[1] Unix
-- seconds, ARGV[2] its node (kept if the hash names none).
redis.call('HSET', KEYS[1], 'state', '0', 'offline_at', ARGV[1])
redis.call('HSETNX', KEYS[1], 'node', ARGV[2])
return 1

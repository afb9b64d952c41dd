-- Redis Cluster: topics join an index after their data was written.
-- KEYS[1] the index; KEYS[2], for the message index, the topics the
-- sweeper found empty once (same slot), which forgets them. ARGV: topics.
for i = 1, #ARGV do
  redis.call('ZADD', KEYS[1], 0, ARGV[i])
  if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[i]) end
end
return #ARGV

-- Redis Cluster: drops topics whose sorted set was found empty from the
-- message index, over two sweeps. KEYS[1] the index, KEYS[2] the set of
-- topics found empty once (same slot). ARGV: the topics found empty now.
-- A topic found empty for the second time leaves the index; otherwise it
-- is remembered. Every store removes its topics from KEYS[2] after
-- writing, so a topic written meanwhile is never dropped.
local dropped = 0
for i = 1, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    dropped = dropped + 1
  else
    redis.call('ZADD', KEYS[2], 0, ARGV[i])
  end
end
return dropped

local before = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local removed = 0
for i = 4, #ARGV do
  local topic = ARGV[i]
  local z = ARGV[1] .. topic
  while budget > 0 do
    local first = redis.call('ZRANGE', z, 0, 0)
    if #first == 0 then
      redis.call('ZREM', KEYS[1], topic)
      break
    end
    budget = budget - 1
    local id = first[1]
    local h = ARGV[1] .. id
    local v = redis.call('HMGET', h, 'topic', 'ts')
    if v[1] ~= topic then
      redis.call('ZREM', z, id)
    elseif (tonumber(v[2]) or 0) < before then
      redis.call('DEL', h)
      redis.call('ZREM', z, id)
      removed = removed + 1
    else
      break
    end
  end
end
return { removed, budget }

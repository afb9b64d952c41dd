-- Redis Cluster: removes messages that arrived before a time from the front
-- (oldest) of sets whose keys share one slot. KEYS: the sorted sets.
-- ARGV[1] the cut (Unix seconds), ARGV[2] a budget of members to look at.
-- Returns the messages removed, the budget left, then the 1-based indexes
-- of the sets found empty (their topics may leave the index).
local before = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local removed = 0
local empty = {}
for i = 1, #KEYS do
  local z = KEYS[i]
  while budget > 0 do
    local first = redis.call('ZRANGE', z, 0, 0)
    if #first == 0 then
      empty[#empty + 1] = i
      break
    end
    budget = budget - 1
    local h = z .. ':' .. first[1]
    local ts = redis.call('HGET', h, 'ts')
    if not ts then
      redis.call('ZREM', z, first[1])
    elseif (tonumber(ts) or 0) < before then
      redis.call('DEL', h)
      redis.call('ZREM', z, first[1])
      removed = removed + 1
    else
      break
    end
  end
end
local out = { removed, budget }
for _, i in ipairs(empty) do out[#out + 1] = i end
return out

local pubsub = ARGV[1] == 'pubsub'
local since = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local floorN, floorS = nil, nil
if pubsub then
  local s = redis.call('GET', KEYS[1])
  if not s then
    redis.call('SET', KEYS[1], redis.call('GET', KEYS[2]) or '0')
    return {}
  end
  if tonumber(s) then floorN, floorS = tonumber(s), s end
end
local cands = {}
local ntopics = #ARGV - 4
for i = 1, ntopics do
  local z, a = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local fN, fS = floorN, floorS
  if pubsub then
    local v = redis.call('GET', a)
    local vn = tonumber(v)
    if vn and (not fN or vn > fN) then fN, fS = vn, v end
  end
  local min = '-inf'
  if fS then min = '(' .. fS end
  local r = redis.call('ZRANGEBYSCORE', z, min, '+inf', 'WITHSCORES')
  if #r == 0 and redis.call('EXISTS', z) == 0 then
    redis.call('ZREM', KEYS[3], ARGV[4 + i])
  end
  for j = 1, #r, 2 do cands[#cands + 1] = { tonumber(r[j + 1]), i, r[j] } end
end
table.sort(cands, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[3] < y[3]) end)
local out = {}
local kept = 0
for k = #cands, 1, -1 do
  if max and kept >= max then break end
  local c = cands[k]
  local topic = ARGV[4 + c[2]]
  local v = redis.call('HMGET', ARGV[4] .. c[3], 'id', 'from', 'qos', 'topic', 'retain', 'payload', 'ts')
  if v[4] ~= topic then
    redis.call('ZREM', KEYS[2 + 2 * c[2]], c[3])
  elseif not since or (tonumber(v[7]) or 0) * 1000 >= since then
    kept = kept + 1
    out[#out + 1] = c[3]
    for f = 1, 7 do out[#out + 1] = v[f] or '' end
  end
end
return out

local pubsub = ARGV[1] == 'pubsub'
local since = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local page = tonumber(ARGV[4])
local prefix = ARGV[5]
local floorN, floorS = nil, nil
if pubsub then
  local s = redis.call('GET', KEYS[1])
  if not s then
    redis.call('SET', KEYS[1], redis.call('GET', KEYS[2]) or '0')
    return {}
  end
  if tonumber(s) then floorN, floorS = tonumber(s), s end
end
local ntopics = #ARGV - 5
-- A page (without max or since) reads at most its size from each topic; the
-- members removed as expired on the way make a short page, so it is read
-- again until none is removed.
local windowed = page and not max and not since
local function gather()
  local cands = {}
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
    local r
    if windowed then
      r = redis.call('ZRANGEBYSCORE', z, min, '+inf', 'WITHSCORES', 'LIMIT', 0, page)
    else
      r = redis.call('ZRANGEBYSCORE', z, min, '+inf', 'WITHSCORES')
    end
    if #r == 0 and redis.call('EXISTS', z) == 0 then
      redis.call('ZREM', KEYS[3], ARGV[5 + i])
    end
    for j = 1, #r, 2 do cands[#cands + 1] = { tonumber(r[j + 1]), i, r[j] } end
  end
  table.sort(cands, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[3] < y[3]) end)
  local out, kept, removed = {}, 0, false
  local first, last, step = #cands, 1, -1
  local limit = max
  if page and not max then first, last, step, limit = 1, #cands, 1, page end
  for k = first, last, step do
    if limit and kept >= limit then break end
    local c = cands[k]
    local topic = ARGV[5 + c[2]]
    local v = redis.call('HMGET', prefix .. c[3], 'id', 'from', 'qos', 'topic', 'retain', 'payload', 'ts', 'props')
    if v[4] ~= topic then
      redis.call('ZREM', KEYS[2 + 2 * c[2]], c[3])
      removed = true
    elseif not since or (tonumber(v[7]) or 0) * 1000 >= since then
      kept = kept + 1
      out[#out + 1] = c[3]
      for f = 1, 8 do out[#out + 1] = v[f] or '' end
    end
  end
  return out, kept, removed
end
local out, kept, removed = gather()
while windowed and removed and kept < page do
  out, kept, removed = gather()
end
return out

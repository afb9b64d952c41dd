-- Redis Cluster: offline messages of topics whose keys share one slot.
-- KEYS: per topic its sorted set, then the client's read position on it.
-- ARGV[1] 'queue' or 'pubsub', ARGV[2] since (Unix milliseconds, or
-- empty), ARGV[3] max count (or empty), ARGV[4] the filter's start (pubsub;
-- a score, or empty), ARGV[5] page (or empty).
-- A topic's floor is the larger of the start and its read position
-- (pubsub); members scored above it are the candidates, read newest first
-- until max are kept (with a page and no max: oldest first until page are
-- kept, at most page members read from each topic), skipping those older
-- than since and removing those whose hash expired. Returns per kept
-- message, newest first (oldest first for a page): its score, its id and
-- the eight hash values.
local pubsub = ARGV[1] == 'pubsub'
local since = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local start = tonumber(ARGV[4])
local page = tonumber(ARGV[5])
-- Members removed as expired make a windowed page short: read again.
local windowed = page and not max and not since
local function gather()
  local cands = {}
  for i = 1, #KEYS / 2 do
    local z, a = KEYS[2 * i - 1], KEYS[2 * i]
    local floor = nil
    if pubsub then
      floor = start
      local v = tonumber(redis.call('GET', a))
      if v and (not floor or v > floor) then floor = v end
    end
    local min = '-inf'
    if floor then min = '(' .. string.format('%.0f', floor) end
    local r
    if windowed then
      r = redis.call('ZRANGEBYSCORE', z, min, '+inf', 'WITHSCORES', 'LIMIT', 0, page)
    else
      r = redis.call('ZRANGEBYSCORE', z, min, '+inf', 'WITHSCORES')
    end
    for j = 1, #r, 2 do cands[#cands + 1] = { tonumber(r[j + 1]), i, r[j], r[j + 1] } end
  end
  table.sort(cands, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[3] < y[3]) end)
  local out, kept, removed = {}, 0, false
  local first, last, step = #cands, 1, -1
  local limit = max
  if page and not max then first, last, step, limit = 1, #cands, 1, page end
  for k = first, last, step do
    if limit and kept >= limit then break end
    local c = cands[k]
    local z = KEYS[2 * c[2] - 1]
    local v = redis.call('HMGET', z .. ':' .. c[3], 'id', 'from', 'qos', 'topic', 'retain', 'payload', 'ts', 'props')
    if not v[4] then
      redis.call('ZREM', z, c[3])
      removed = true
    elseif not since or (tonumber(v[7]) or 0) * 1000 >= since then
      kept = kept + 1
      out[#out + 1] = c[4]
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

for i = 1, #ARGV do
  local s = redis.call('ZSCORE', KEYS[2 * i - 1], ARGV[i])
  if s then
    local cur = tonumber(redis.call('GET', KEYS[2 * i]))
    if not cur or cur < tonumber(s) then redis.call('SET', KEYS[2 * i], s) end
  end
end
return #ARGV

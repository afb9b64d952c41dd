for i = 1, #ARGV do
  if redis.call('EXISTS', KEYS[1 + i]) == 0 then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return #ARGV

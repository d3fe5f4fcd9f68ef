--[[
  Renews a key's life (the collector lock) only if it still holds the caller's token.

  KEYS[1]  the key
  ARGV[1]  the caller's token
  ARGV[2]  the new life in milliseconds

  Returns 1 when renewed, 0 when the key is gone or holds another token.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0

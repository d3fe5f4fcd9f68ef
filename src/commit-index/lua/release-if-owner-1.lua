--[[
  Deletes a key (a tombstone, the collector lock) only if it still holds the caller's token, so a
  caller whose key expired and was taken by another never removes the other's.

  KEYS[1]  the key
  ARGV[1]  the caller's token

  Returns 1 when deleted, 0 otherwise.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0

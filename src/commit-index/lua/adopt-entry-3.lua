--[[
  Brings a commit entry written before leases were tracked (one that expires by its Redis TTL)
  under the lease index: the TTL is removed and the entry is given a lease from now. Does nothing
  when the entry is gone or already tracked.

  KEYS[1]  the commit entry
  KEYS[2]  the lease index ({prefix}gc:lease)
  KEYS[3]  the running byte total ({prefix}gc:bytes)
  ARGV[1]  the lease index member ({fn}:{hash})
  ARGV[2]  the touch time (ms)

  Returns 1 when adopted, 0 otherwise.
]]
local size = redis.call('GET', KEYS[1])
if not size or redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('INCRBY', KEYS[3], size)
return 1

--[[
  Removes a commit entry and its lease (a blob whose object turned out missing or corrupt).

  KEYS[1]  the commit entry
  KEYS[2]  the lease index ({prefix}gc:lease)
  KEYS[3]  the running byte total ({prefix}gc:bytes)
  ARGV[1]  the lease index member ({fn}:{hash})

  Returns 1 when an entry or a lease was removed, 0 when there was none.
]]
local size = redis.call('GET', KEYS[1])
local removed = redis.call('DEL', KEYS[1])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  removed = 1
  if size then
    redis.call('DECRBY', KEYS[3], size)
  end
end
return removed

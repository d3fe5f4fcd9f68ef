--[[
  Condemns a blob for deletion: removes its commit entry and lease and leaves a tombstone, in one
  step, but only if the blob is still what the collector chose. From here until the tombstone is
  released or expires, no write intent can be recorded for the blob (begin-put-4), so no commit of
  it can happen while its object is being deleted.

  KEYS[1]  the commit entry ({prefix}cas:{fn}:{hash})
  KEYS[2]  the lease index ({prefix}gc:lease)
  KEYS[3]  the running byte total ({prefix}gc:bytes)
  KEYS[4]  the blob's write intents ({prefix}gc:putting:{fn}:{hash})
  KEYS[5]  the blob's tombstone ({prefix}gc:tomb:{fn}:{hash})
  KEYS[6]  the collector lock ({prefix}gc:lock)
  ARGV[1]  the lease index member ({fn}:{hash})
  ARGV[2]  what the collector saw: the lease score as Redis printed it (condemn only if the blob
           was not touched since); '' for an orphan object (condemn only if the blob has neither
           entry nor lease); '*' for a corrupt blob found by the scrubber (condemn whatever its
           lease)
  ARGV[3]  tombstone token
  ARGV[4]  tombstone life in milliseconds
  ARGV[5]  the collector's lock token ('' when the caller holds no lock: the scrubber)
  ARGV[6]  the lock's life in milliseconds, renewed by every call

  Returns {1, size} when condemned (size 0 when the entry was already gone); {0, why} when the
  blob is kept, why being 1: touched since (or, for an orphan, committed meanwhile; for the
  scrubber, no entry any more), 2: being written (a live intent), 3: already condemned; {-1, 0}
  when the caller no longer holds the lock (it must stop).
]]
if ARGV[5] ~= '' then
  if redis.call('GET', KEYS[6]) ~= ARGV[5] then
    return {-1, 0}
  end
  redis.call('PEXPIRE', KEYS[6], ARGV[6])
end
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {0, 3}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('ZCARD', KEYS[4]) > 0 then
  return {0, 2}
end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if ARGV[2] == '' then
  if score or redis.call('EXISTS', KEYS[1]) == 1 then
    return {0, 1}
  end
elseif ARGV[2] == '*' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return {0, 1}
  end
elseif score ~= ARGV[2] then
  return {0, 1}
end
local size = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 and size then
  redis.call('DECRBY', KEYS[3], size)
end
redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[4])
return {1, tonumber(size or '0')}

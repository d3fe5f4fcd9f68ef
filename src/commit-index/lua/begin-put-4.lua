--[[
  Announces that an object is about to be written at a blob's key (PutObject, or the
  CompleteMultipartUpload that makes an object appear), so that no collector condemns the blob
  while the write is in flight. Refused while a collector holds the blob's tombstone: the caller
  waits for the tombstone to go and asks again.

  Asked to, it first checks whether the blob is committed already (an entry of the right size with
  a lease), and if so only renews the lease, as a lookup would, and records nothing: the caller
  has nothing to write. That saves a writer its separate lookup round trip.

  KEYS[1]  the blob's tombstone ({prefix}gc:tomb:{fn}:{hash})
  KEYS[2]  the blob's write intents ({prefix}gc:putting:{fn}:{hash}), a sorted set of
           token -> expiry (Redis server time, ms)
  KEYS[3]  the commit entry ({prefix}cas:{fn}:{hash})
  KEYS[4]  the lease index ({prefix}gc:lease), member {fn}:{hash} -> last touch (ms)
  ARGV[1]  token of this write
  ARGV[2]  how long the intent lasts, in milliseconds
  ARGV[3]  the blob's size in bytes to check for a commit first, or '' not to check
  ARGV[4]  the lease index member ({fn}:{hash})
  ARGV[5]  the touch time (ms), the lease's new start when the blob is committed

  Returns 0 when the intent is recorded; -1 when the blob is committed (lease renewed, no
  intent); or the tombstone's remaining life in milliseconds (at least 1) when a collector holds
  the blob.
]]
if ARGV[3] ~= '' and redis.call('GET', KEYS[3]) == ARGV[3]
    and redis.call('ZSCORE', KEYS[4], ARGV[4]) then
  redis.call('ZADD', KEYS[4], 'XX', ARGV[5], ARGV[4])
  return -1
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl ~= -2 then
  if pttl < 1 then
    return 1
  end
  return pttl
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
return 0

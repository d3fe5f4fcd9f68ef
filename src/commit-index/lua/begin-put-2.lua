--[[
  Announces that an object is about to be written at a blob's key (PutObject, or the
  CompleteMultipartUpload that makes an object appear), so that no collector condemns the blob
  while the write is in flight. Refused while a collector holds the blob's tombstone: the caller
  waits for the tombstone to go and asks again.

  KEYS[1]  the blob's tombstone ({prefix}gc:tomb:{fn}:{hash})
  KEYS[2]  the blob's write intents ({prefix}gc:putting:{fn}:{hash}), a sorted set of
           token -> expiry (Redis server time, ms)
  ARGV[1]  token of this write
  ARGV[2]  how long the intent lasts, in milliseconds

  Returns 0 when the intent is recorded, or the tombstone's remaining life in milliseconds (at
  least 1) when a collector holds the blob.
]]
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

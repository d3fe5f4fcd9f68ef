--[[
  Writes a blob's commit entry after its object was written under a write intent (begin-put-4),
  and starts its lease. Refused when the intent is gone or expired, or a tombstone exists: a
  collector may then have deleted the object after it was written, so the caller must write the
  object again (under a new intent) before committing.

  KEYS[1]  the commit entry ({prefix}cas:{fn}:{hash})
  KEYS[2]  the blob's write intents ({prefix}gc:putting:{fn}:{hash})
  KEYS[3]  the lease index ({prefix}gc:lease), member {fn}:{hash} -> last touch (ms)
  KEYS[4]  the running byte total of the lease index ({prefix}gc:bytes)
  KEYS[5]  the blob's tombstone ({prefix}gc:tomb:{fn}:{hash})
  KEYS[6]  when this index began ({prefix}gc:born, ms): set by the first commit into an empty
           index; the orphan sweep never deletes objects older than that
  KEYS[7]  the replication log ({prefix}replication:log), a stream; touched only when ARGV[5] is 1
  ARGV[1]  token of the write (as given to begin-put-4)
  ARGV[2]  the blob's size in bytes
  ARGV[3]  the lease index member ({fn}:{hash})
  ARGV[4]  the touch time (ms)
  ARGV[5]  1: append the commit to the replication log, in this same step, so that no crash can
           separate a commit from its log entry; 0: do not
  ARGV[6]  the log's approximate cap (XADD MAXLEN ~)
  ARGV[7]  the digest function's name (SHA256, ...), for the log entry
  ARGV[8]  the hash, for the log entry

  Returns 1 when committed, 0 when refused (nothing changed but the intent's removal).
]]
local expiry = redis.call('ZSCORE', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not expiry or tonumber(expiry) <= now or redis.call('EXISTS', KEYS[5]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[6], now, 'NX')
if redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3]) == 1 then
  redis.call('INCRBY', KEYS[4], ARGV[2])
end
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[6], '*',
    'kind', 'blob', 'fn', ARGV[7], 'hash', ARGV[8], 'size', ARGV[2])
end
return 1

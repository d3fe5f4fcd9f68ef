--[[
  Makes the calling session the owner of a recorded upload and returns its checkpoint. The previous
  owner's next save or removal then fails, which is how it learns it lost the upload.

  KEYS[1]  the upload's key
  ARGV[1]  owner token of the calling session
  ARGV[2]  lifetime in milliseconds

  Returns the encoded checkpoint, or nil when no upload is recorded.
]]
local checkpoint = redis.call('HGET', KEYS[1], 'checkpoint')
if not checkpoint then
  return nil
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local marker = redis.call('HGET', KEYS[1], 'marker')
if marker then
  redis.call('PEXPIRE', marker, ARGV[2])
end
return checkpoint

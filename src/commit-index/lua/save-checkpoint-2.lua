--[[
  Replaces an upload's checkpoint, but only for the session that owns it, and renews the lifetime
  of the upload and of its multipart upload's marker.

  KEYS[1]  the upload's key
  KEYS[2]  the multipart upload's marker
  ARGV[1]  owner token of the calling session
  ARGV[2]  encoded checkpoint (JSON)
  ARGV[3]  lifetime in milliseconds

  Returns 1 when saved, 0 when the key is gone or another session owns it now.
]]
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'checkpoint', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[3])
return 1

--[[
  Records a new resumable upload, unless one is already recorded under the key, and marks its
  multipart upload as owned so the janitor leaves it alone.

  KEYS[1]  the upload's key ({prefix}upload:{id})
  KEYS[2]  the multipart upload's marker ({prefix}mpu:{s3 upload id})
  ARGV[1]  owner token of the session creating it
  ARGV[2]  encoded checkpoint (JSON)
  ARGV[3]  lifetime in milliseconds

  Returns 1 when recorded, 0 when the key already existed (nothing changed).
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'checkpoint', ARGV[2], 'marker', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[3])
return 1

--[[
  Forgets an upload and its multipart upload's marker, but only for the session that owns it.

  KEYS[1]  the upload's key
  ARGV[1]  owner token of the calling session

  Returns 1 when removed, 0 when the key is gone or another session owns it.
]]
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
local marker = redis.call('HGET', KEYS[1], 'marker')
if marker then
  redis.call('DEL', marker)
end
redis.call('DEL', KEYS[1])
return 1

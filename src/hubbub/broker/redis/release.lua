-- A member left its room (and announced it itself): its entry goes, if it is
-- still that session's.
local members_key, order_key = KEYS[1], KEYS[2]
local user_id, session_id, room_channel = ARGV[1], ARGV[2], ARGV[3]

local existing = redis.call('HGET', members_key, user_id)
if not existing then return 0 end
local mine = session_id .. '|'
if string.sub(existing, 1, #mine) ~= mine then return 0 end
redis.call('HDEL', members_key, user_id)
if redis.call('HLEN', members_key) == 0 then redis.call('DEL', order_key) end
redis.call('PUBLISH', room_channel, 'l' .. cjson.encode({u=user_id, e=existing, a=0}))
return 1

-- A member left its room (and announced it itself): its entry goes, if it is
-- still that session's. last_seen: when it left, if it chatted there (else 0).
local members_key, order_key, room_names_key = KEYS[1], KEYS[2], KEYS[3]
local user_id, session_id, room_channel = ARGV[1], ARGV[2], ARGV[3]
local last_seen, room = tonumber(ARGV[4]), ARGV[5]

local existing = redis.call('HGET', members_key, user_id)
if not existing then return 0 end
local mine = session_id .. '|'
if string.sub(existing, 1, #mine) ~= mine then return 0 end
redis.call('HDEL', members_key, user_id)
if redis.call('HLEN', members_key) == 0 then
  redis.call('DEL', order_key)
  redis.call('ZREM', room_names_key, room)
end
redis.call('PUBLISH', room_channel,
  'l' .. cjson.encode({u=user_id, e=existing, a=0, t=last_seen}))
return 1

-- A member's status or connection changed: its entry says so (in its place in the
-- join order), if it is still that session's; the other nodes' mirrors follow.
local members_key = KEYS[1]
local user_id, session_id, info, room_channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local existing = redis.call('HGET', members_key, user_id)
if not existing then return 0 end
local mine = session_id .. '|'
if string.sub(existing, 1, #mine) ~= mine then return 0 end
local order = string.match(existing, '^[^|]*|([^|]*)|')
local entry = session_id .. '|' .. order .. '|' .. info
redis.call('HSET', members_key, user_id, entry)
redis.call('PUBLISH', room_channel, 'v' .. cjson.encode({u=user_id, e=entry}))
return 1

-- A node takes a session of another node into a room (see handover.py): the mark on
-- the room's channel, with the room's members at that point (the taking node may
-- have had none of them in mind: it hears the room only from now on), and the room's
-- calls as media.lua has them, if it has any (room_calls.lua, as a claim's answer).
local members_key, media_key, settings_key = KEYS[1], KEYS[2], KEYS[3]
local room_channel, session_id, taken_by, room = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local all = redis.call('HGETALL', members_key)
local mark = {s=session_id, b=taken_by, m=all, md=room_calls(media_key, settings_key, room)}
redis.call('PUBLISH', room_channel, 'T' .. cjson.encode(mark))
return 1

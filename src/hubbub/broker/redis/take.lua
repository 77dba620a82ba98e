-- A node takes a session of another node into a room (see handover.py): the mark on
-- the room's channel, with the room's members at that point (the taking node may
-- have had none of them in mind: it hears the room only from now on).
local members_key = KEYS[1]
local room_channel, session_id, taken_by = ARGV[1], ARGV[2], ARGV[3]

local all = redis.call('HGETALL', members_key)
redis.call('PUBLISH', room_channel, 'T' .. cjson.encode({s=session_id, b=taken_by, m=all}))
return 1

-- A node takes a session of another node into a room (see handover.py): the mark on
-- the room's channel, with the room's members at that point (the taking node may
-- have had none of them in mind: it hears the room only from now on), and the room's
-- calls as media.lua has them, if it has any (as a claim's answer has them).
local members_key, media_key, settings_key = KEYS[1], KEYS[2], KEYS[3]
local room_channel, session_id, taken_by, room = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local all = redis.call('HGETALL', members_key)
local mark = {s=session_id, b=taken_by, m=all}
local version = redis.call('HGET', media_key, 'v')
if version then
  local feeds = {}
  local media = redis.call('HGETALL', media_key)
  for i = 1, #media, 2 do
    if string.sub(media[i], 1, 2) == 'f:' then feeds[string.sub(media[i], 3)] = media[i + 1] end
  end
  mark.md = {v=tonumber(version), m=redis.call('HGET', media_key, 'mode') or 'mesh', f=feeds,
    s=redis.call('HGET', settings_key, room) or ''}
end
redis.call('PUBLISH', room_channel, 'T' .. cjson.encode(mark))
return 1

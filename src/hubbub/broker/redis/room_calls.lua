-- A part of the scripts that use it (put before them: scripts.py), not a script.
-- What a claim's answer and a take's mark carry of a room's calls (``md`` in
-- wire.py): the version, mode, feeds and setting as media.lua keeps them; nil when
-- the room has none.
local function room_calls(media_key, settings_key, room)
  local version = redis.call('HGET', media_key, 'v')
  if not version then return nil end
  local feeds = {}
  local media = redis.call('HGETALL', media_key)
  for i = 1, #media, 2 do
    if string.sub(media[i], 1, 2) == 'f:' then feeds[string.sub(media[i], 3)] = media[i + 1] end
  end
  return {v=tonumber(version), m=redis.call('HGET', media_key, 'mode') or 'mesh', f=feeds,
    s=redis.call('HGET', settings_key, room) or ''}
end

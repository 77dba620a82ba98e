-- A room's calls across the nodes: each node's count of members who send, the
-- feeds of the room's members on the media server, the room's own setting; and
-- the room's mode, decided here from all of them, once for the cluster. Any change
-- gets a new version (one counter for every room: never reused) and goes to the
-- room's channel whole (MEDIA, see wire.py), for every node there, its own included.
--
-- op: 'senders' (value: this node's count), 'feed' (value: the feed, '' when it
-- goes), 'setting' (value: the setting, '' for the server's default), 'done' (this
-- node has no member there any more), 'handed' (nor has it, because its last
-- members moved to node value: its count goes to that node's until it counts anew).
--
-- The mode is hubbub.media.modes.next_mode's table, which tests hold this to;
-- with no default setting given (a feed's change), it stays as it is.
local media_key, settings_key, version_key = KEYS[1], KEYS[2], KEYS[3]
local op, node, value, user_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local default, mesh_max, sfu_available = ARGV[5], tonumber(ARGV[6]), ARGV[7] == '1'
local back_at, room, room_channel, reason = tonumber(ARGV[8]), ARGV[9], ARGV[10], ARGV[11]

-- Set a hash's field to value ('': remove it); whether that changed it.
local function put(key, field, wanted)
  if wanted == '' then return redis.call('HDEL', key, field) == 1 end
  if redis.call('HGET', key, field) == wanted then return false end
  redis.call('HSET', key, field, wanted)
  return true
end

local changed = redis.call('HDEL', media_key, 'dirty') == 1
if op == 'senders' then
  local before = redis.call('HGET', media_key, 's:' .. node)
  if not before then changed = true end  -- a node new to the room hears it all
  redis.call('HSET', media_key, 's:' .. node, value)
elseif op == 'feed' then
  changed = put(media_key, 'f:' .. user_id, value) or changed
elseif op == 'setting' then
  changed = put(settings_key, room, value) or changed
elseif op == 'done' then
  redis.call('HDEL', media_key, 's:' .. node)
elseif op == 'handed' then
  local mine = tonumber(redis.call('HGET', media_key, 's:' .. node) or '0')
  redis.call('HDEL', media_key, 's:' .. node)
  redis.call('HINCRBY', media_key, 's:' .. value, mine)  -- (made, at 0, if need be)
end

local senders, nodes, feeds = 0, 0, {}
local all = redis.call('HGETALL', media_key)
for i = 1, #all, 2 do
  local field, kept = all[i], all[i + 1]
  local kind = string.sub(field, 1, 2)
  if kind == 's:' then
    senders = senders + tonumber(kept)
    nodes = nodes + 1
  elseif kind == 'f:' then
    feeds[string.sub(field, 3)] = kept
  end
end
if nodes == 0 then
  -- No node has members there: nothing to keep but the setting.
  redis.call('DEL', media_key)
  return 0
end

local stored = redis.call('HGET', settings_key, room)
local setting = stored or default
local now = redis.call('HGET', media_key, 'mode') or 'mesh'
local mode
if default == '' then
  mode = now  -- what changed (a feed) does not decide it
elseif not sfu_available or setting == 'mesh' then
  mode = 'mesh'
elseif setting == 'sfu' then
  mode = 'sfu'
elseif now == 'mesh' then
  if senders > mesh_max then mode = 'sfu' else mode = 'mesh' end
else
  if senders <= math.min(back_at, mesh_max) then mode = 'mesh' else mode = 'sfu' end
end
if mode ~= now then
  redis.call('HSET', media_key, 'mode', mode)
  changed = true
end
if not changed then return 0 end
local version = redis.call('INCR', version_key)
redis.call('HSET', media_key, 'v', version)
redis.call('PUBLISH', room_channel, 'M' .. cjson.encode(
  {v=version, m=mode, f=feeds, s=stored or '', r=reason}))
return version

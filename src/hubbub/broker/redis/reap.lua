-- A node whose alive key expired is dead: its members leave their rooms (announced
-- as gone, their feeds and senders withdrawn from the rooms' calls, its rooms on the
-- media servers listed as candidate orphans), and it is no longer where any user
-- can be reached (a call whose callee no live node reaches is told, as by
-- user_gone.lua). -1 if it is alive after all; else how many members it had.
local alive_key, node_rooms_key, nodes_key = KEYS[1], KEYS[2], KEYS[3]
local dead, prefix = ARGV[1], ARGV[2]

if redis.call('EXISTS', alive_key) == 1 then return -1 end
local rooms = redis.call('SMEMBERS', node_rooms_key)
local node = dead .. '.'
local gone = 0
for _, room in ipairs(rooms) do
  local hash = prefix .. 'members:' .. room
  local media = prefix .. 'media:' .. room
  local all = redis.call('HGETALL', hash)
  for i = 1, #all, 2 do
    local entry = all[i + 1]
    if string.sub(entry, 1, #node) == node then
      redis.call('HDEL', hash, all[i])
      redis.call('HDEL', media, 'f:' .. all[i])
      redis.call('PUBLISH', prefix .. 'r:' .. room,
        'l' .. cjson.encode({u=all[i], e=entry, a=1}))
      gone = gone + 1
    end
  end
  -- Its senders and feeds no longer count: the next change (media.lua, which the
  -- other nodes make as they hear of these members gone) says so.
  if redis.call('HDEL', media, 's:' .. dead) == 1 then
    redis.call('HSET', media, 'dirty', 1)
  end
  -- Its placement on the media servers may now be used by no node: a candidate
  -- orphan, whose room there a live node removes if no node uses it when it looks
  -- (media_room.lua, 'orphans' and 'take').
  if redis.call('HDEL', prefix .. 'mediaroom:' .. room, 'node:' .. dead) == 1 then
    redis.call('SADD', prefix .. 'mediaorphans', room)
  end
  if redis.call('HLEN', hash) == 0 then
    redis.call('DEL', prefix .. 'order:' .. room)
    redis.call('ZREM', prefix .. 'roomnames', room)
  end
end
redis.call('DEL', node_rooms_key)
redis.call('SREM', nodes_key, dead)
for _, user in ipairs(redis.call('SMEMBERS', prefix .. 'users:' .. dead)) do
  local user_nodes = prefix .. 'conn:' .. user
  redis.call('HDEL', user_nodes, dead)
  -- A user no live node reaches any more: a call it is in hears of it (user_gone.lua).
  local reached = false
  for _, other in ipairs(redis.call('HKEYS', user_nodes)) do
    if redis.call('EXISTS', prefix .. 'alive:' .. other) == 1 then reached = true end
  end
  local call_id = not reached and redis.call('GET', prefix .. 'call:' .. user)
  local call_node = call_id and string.match(call_id, '^([^.]+)%.')
  if call_node then
    redis.call('PUBLISH', prefix .. 'n:' .. call_node, 'k' .. cjson.encode(
      {c=call_id, m='callee-gone', u=user, s='', f=cjson.null, r=cjson.null}))
  end
end
redis.call('DEL', prefix .. 'users:' .. dead)
return gone

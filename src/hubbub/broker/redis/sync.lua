-- A node (re)connects: it is alive, and Redis is made to agree with its members.
-- Its entries it no longer has leave (announced); those Redis lost come back
-- (announced); each of its rooms' members is sent to it (a snapshot). Returns the
-- session ids of its members whose user id another session took meanwhile.
local node_rooms_key, alive_key, nodes_key = KEYS[1], KEYS[2], KEYS[3]
local node_id, prefix, ttl_ms, node_channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local want = cjson.decode(ARGV[5])  -- room -> [[user id, session id, info]...]
local wire_version = ARGV[6]  -- what the alive key holds: the publications it reads

redis.call('SET', alive_key, wire_version, 'PX', ttl_ms)
redis.call('SADD', nodes_key, node_id)
local node = node_id .. '.'
local conflicts = {}
for _, room in ipairs(redis.call('SMEMBERS', node_rooms_key)) do
  local hash = prefix .. 'members:' .. room
  local keep = {}
  for _, m in ipairs(want[room] or {}) do keep[m[1]] = m[2] end
  local all = redis.call('HGETALL', hash)
  for i = 1, #all, 2 do
    local entry = all[i + 1]
    if string.sub(entry, 1, #node) == node
        and keep[all[i]] ~= string.match(entry, '^([^|]*)') then
      redis.call('HDEL', hash, all[i])
      redis.call('PUBLISH', prefix .. 'r:' .. room,
        'l' .. cjson.encode({u=all[i], e=entry, a=1}))
    end
  end
  if redis.call('HLEN', hash) == 0 then
    redis.call('DEL', prefix .. 'order:' .. room)
    redis.call('ZREM', prefix .. 'roomnames', room)
  end
  if not want[room] then redis.call('SREM', node_rooms_key, room) end
end
for room, members in pairs(want) do
  local hash = prefix .. 'members:' .. room
  redis.call('SADD', node_rooms_key, room)
  if #members > 0 then redis.call('ZADD', prefix .. 'roomnames', 0, room) end
  for _, m in ipairs(members) do
    local existing = redis.call('HGET', hash, m[1])
    if not existing then
      local order = redis.call('INCR', prefix .. 'order:' .. room)
      local entry = m[2] .. '|' .. order .. '|' .. m[3]
      redis.call('HSET', hash, m[1], entry)
      redis.call('PUBLISH', prefix .. 'r:' .. room,
        'j' .. cjson.encode({u=m[1], e=entry, a=1}))
    elseif string.match(existing, '^([^|]*)') ~= m[2] then
      table.insert(conflicts, m[2])
    end
  end
  redis.call('PUBLISH', node_channel,
    'y' .. cjson.encode({r=room, m=redis.call('HGETALL', hash)}))
end
return conflicts

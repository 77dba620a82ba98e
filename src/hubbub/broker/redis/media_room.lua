-- Where a room is on the media servers (hubbub.media.placements), and which nodes
-- use it there: every node's members of a room must use the same room on the same
-- media server.
--
-- op 'place': the placement there is, unless its media server is not among those
-- up for this node (ARGV[6], one name a line): then the one proposed (server, room
-- id, secret), in place of it. This node uses it from now on. Answers
-- [server, room id, secret].
-- op 'release': this node is done with the placement of room id ARGV[3]. Answers 1
-- when no node uses it any more (the caller removes the room there), else 0.
-- op 'orphans' (KEYS[1]: the set of candidate orphans, which reap.lua fills with
-- the placements a dead node used; ARGV[3]: the keys' prefix): the placements no
-- node uses, as [room, server, room id, secret, ...]; those still used, or gone,
-- leave the set.
-- op 'take' (KEYS[2]: the set of orphans): the orphaned placement of room id ARGV[3]
-- goes, for this node to remove the room there; answers 1, or 0 if a node uses it
-- again (or it was replaced, or taken already).
local key = KEYS[1]
local op, node = ARGV[1], ARGV[2]

local function used(placed)
  for _, field in ipairs(redis.call('HKEYS', placed)) do
    if string.sub(field, 1, 5) == 'node:' then return true end
  end
  return false
end

if op == 'orphans' then
  local found = {}
  for _, room in ipairs(redis.call('SMEMBERS', key)) do
    local placed = ARGV[3] .. 'mediaroom:' .. room
    local where = redis.call('HMGET', placed, 'server', 'room', 'secret')
    if where[1] and not used(placed) then
      table.insert(found, room)
      for _, value in ipairs(where) do table.insert(found, value) end
    else
      redis.call('SREM', key, room)
    end
  end
  return found
end

if op == 'take' then
  local room = ARGV[4]
  redis.call('SREM', KEYS[2], room)
  if redis.call('HGET', key, 'room') ~= ARGV[3] or used(key) then return 0 end
  redis.call('DEL', key)
  return 1
end

if op == 'place' then
  local server = redis.call('HGET', key, 'server')
  local usable = false
  if server then
    for name in string.gmatch(ARGV[6], '[^\n]+') do
      if name == server then usable = true end
    end
  end
  if not usable then
    redis.call('DEL', key)  -- whoever used the other is told by its own media server
    redis.call('HSET', key, 'server', ARGV[3], 'room', ARGV[4], 'secret', ARGV[5])
  end
  redis.call('HSET', key, 'node:' .. node, 1)
  return redis.call('HMGET', key, 'server', 'room', 'secret')
end

if redis.call('HGET', key, 'room') ~= ARGV[3] then return 1 end  -- replaced: nobody's
redis.call('HDEL', key, 'node:' .. node)
if used(key) then return 0 end
redis.call('DEL', key)
return 1

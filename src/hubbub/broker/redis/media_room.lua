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
local key = KEYS[1]
local op, node = ARGV[1], ARGV[2]

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
for _, field in ipairs(redis.call('HKEYS', key)) do
  if string.sub(field, 1, 5) == 'node:' then return 0 end
end
redis.call('DEL', key)
return 1

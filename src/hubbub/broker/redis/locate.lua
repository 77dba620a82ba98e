-- Where a session is now: a node that handed it to another left a forwarding
-- address (moved:<id>, see move.lua), maybe more than one in a row. Answers its id
-- there, and whether the node that id names is alive (1 or 0).
local id, prefix = ARGV[1], ARGV[2]

for _ = 1, 16 do
  local moved = redis.call('GET', prefix .. 'moved:' .. id)
  if not moved then break end
  id = moved
end
local node = string.match(id, '^([^.]+)%.')
local alive = 0
if node and redis.call('EXISTS', prefix .. 'alive:' .. node) == 1 then alive = 1 end
return {id, alive}

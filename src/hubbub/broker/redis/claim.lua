-- A member claims its place in a room: admitted unless its user id is there
-- already (and it may not replace it) or the room is full. The answer goes to the
-- claimant's node; what others must hear goes to the room's channel in the same
-- step (see wire.py for the kinds published). An admitted member's user is
-- reachable on its node from then on (for calls placed from any node once the
-- join is answered; the node says so again, and says when it is not any more).
-- The answer carries the room's calls as media.lua has them, if it has any.
local members_key, order_key, node_rooms_key, room_names_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user_nodes_key, node_users_key, media_key, settings_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local user_id, session_id, info = ARGV[1], ARGV[2], ARGV[3]
local replace, max_members = ARGV[4], tonumber(ARGV[5])
local room_channel, node_channel, room = ARGV[6], ARGV[7], ARGV[8]
local joined, left, node = ARGV[9], ARGV[10], ARGV[11]

local existing = redis.call('HGET', members_key, user_id)
local outcome = 'admitted'
if existing then
  if replace ~= '1' then outcome = 'taken' end
elseif redis.call('HLEN', members_key) >= max_members then
  outcome = 'full'
end
if outcome == 'admitted' then
  local order = redis.call('INCR', order_key)
  local entry = session_id .. '|' .. order .. '|' .. info
  redis.call('HSET', members_key, user_id, entry)
  redis.call('SADD', node_rooms_key, room)
  redis.call('ZADD', room_names_key, 0, room)
  redis.call('HSET', user_nodes_key, node, 1)
  redis.call('SADD', node_users_key, user_id)
  if existing then
    redis.call('PUBLISH', room_channel, 'l' .. cjson.encode({u=user_id, e=existing, a=0}))
    if left ~= '' and not string.find(existing, '"h":true', 1, true) then
      redis.call('PUBLISH', room_channel, 'm' .. node .. '00000000\n' .. left)
    end
  end
  redis.call('PUBLISH', room_channel, 'j' .. cjson.encode({u=user_id, e=entry, a=0}))
  if joined ~= '' then
    redis.call('PUBLISH', room_channel, 'm' .. node .. '00000000' .. session_id .. '\n' .. joined)
  end
end
local all = redis.call('HGETALL', members_key)
local answer = {s=session_id, r=room, o=outcome, p=existing or '', m=all,
  md=room_calls(media_key, settings_key, room)}
redis.call('PUBLISH', node_channel, 'c' .. cjson.encode(answer))
return outcome

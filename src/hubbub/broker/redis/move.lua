-- A session moved to another node (a new session id there): its entry in the room
-- names the new session, in its place in the join order; the new node reaches the
-- user and has a member in the room; the old id forwards to the new one for a
-- while (locate.lua). Nothing if the entry is not the old session's any more.
local members_key, moved_key, user_nodes_key = KEYS[1], KEYS[2], KEYS[3]
local node_rooms_key, node_users_key = KEYS[4], KEYS[5]
local user_id, old, new, new_node = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl_ms, room_channel, room = ARGV[5], ARGV[6], ARGV[7]

local existing = redis.call('HGET', members_key, user_id)
local mine = old .. '|'
if not existing or string.sub(existing, 1, #mine) ~= mine then return 0 end
local entry = new .. string.sub(existing, #old + 1)
redis.call('HSET', members_key, user_id, entry)
redis.call('SADD', node_rooms_key, room)
redis.call('HSET', user_nodes_key, new_node, 1)
redis.call('SADD', node_users_key, user_id)
redis.call('SET', moved_key, new, 'PX', ttl_ms)
redis.call('PUBLISH', room_channel, 'v' .. cjson.encode({u=user_id, e=entry, o=old}))
return 1

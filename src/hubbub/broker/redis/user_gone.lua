-- A user's last connection on a node closed: that node no longer reaches it. If no
-- live node does any more, a call it is in is told so on the node where the call
-- lives (the one its id names): a call ringing for it is missed at once.
local user_nodes_key, node_users_key, call_key = KEYS[1], KEYS[2], KEYS[3]
local node, user_id, prefix = ARGV[1], ARGV[2], ARGV[3]

redis.call('HDEL', user_nodes_key, node)
redis.call('SREM', node_users_key, user_id)
for _, other in ipairs(redis.call('HKEYS', user_nodes_key)) do
  if redis.call('EXISTS', prefix .. 'alive:' .. other) == 1 then return 0 end
end
local call_id = redis.call('GET', call_key)
if not call_id then return 0 end
local call_node = string.match(call_id, '^([^.]+)%.')
if not call_node then return 0 end
redis.call('PUBLISH', prefix .. 'n:' .. call_node, 'k' .. cjson.encode(
  {c=call_id, m='callee-gone', u=user_id, s='', f=cjson.null, r=cjson.null}))
return 1

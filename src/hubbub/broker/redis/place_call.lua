-- A call is placed unless a party is in a call already or the callee has no
-- connection on a live node; then it rings on the callee's nodes.
local caller_call_key, callee_call_key, callee_nodes_key = KEYS[1], KEYS[2], KEYS[3]
local call_id, ttl_ms, prefix = ARGV[1], ARGV[2], ARGV[3]
local users_channel, ringing = ARGV[4], ARGV[5]

if redis.call('EXISTS', caller_call_key) == 1 then return 'already-in-call' end
local reachable = false
for _, node in ipairs(redis.call('HKEYS', callee_nodes_key)) do
  if redis.call('EXISTS', prefix .. 'alive:' .. node) == 1 then
    reachable = true
  else
    redis.call('HDEL', callee_nodes_key, node)
  end
end
if not reachable then return 'unavailable' end
if redis.call('EXISTS', callee_call_key) == 1 then return 'busy' end
redis.call('SET', caller_call_key, call_id, 'PX', ttl_ms)
redis.call('SET', callee_call_key, call_id, 'PX', ttl_ms)
redis.call('PUBLISH', users_channel, ringing)
return 'placed'

-- A call ended: each party's call key goes, if it still names this call.
local call_id = ARGV[1]

for _, call_key in ipairs(KEYS) do
  if redis.call('GET', call_key) == call_id then redis.call('DEL', call_key) end
end
return 0

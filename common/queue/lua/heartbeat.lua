-- ARGV[3] worker, [4] lease_ms, then pairs of (scene id, attempt).
-- Renews each lease the worker still holds and records the worker as alive.
-- Returns one code per scene: 1 renewed, 0 lost (taken over or gone), 2 cancel requested.
local worker, lease_ms = str_arg(3, 'worker'), int_arg(4, 'lease_ms', 1)
if #ARGV % 2 ~= 0 then bad('scene ids and attempts must come in pairs') end
redis.call('ZADD', 'sf:workers', now, worker)
local out = {}
for i = 5, #ARGV, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  if owned(id, worker, attempt) then
    redis.call('ZADD', P .. 'leased', 'XX', now + lease_ms, id)
    if redis.call('HGET', skey(id), 'cancel_requested') == '1' then
      out[#out + 1] = 2
    else
      out[#out + 1] = 1
    end
  else
    out[#out + 1] = 0
  end
end
return out

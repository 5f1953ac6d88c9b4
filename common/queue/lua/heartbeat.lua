-- ARGV[3] worker, [4] lease_ms, [5] the worker's hash TTL in seconds (0: the hash is left
-- alone), [6] its heartbeat_at (ms, the worker's clock), [7] its host readings (JSON, '' none),
-- then pairs of (scene id, attempt).
-- Renews each lease the worker still holds and records the worker as alive (sf:workers, and
-- when [5] > 0 its hash's heartbeat_at and readings, expiring [5] seconds later: one command per
-- beat, so that an idle worker costs Redis little).
-- Returns one code per scene: 1 renewed, 0 lost (taken over or gone), 2 cancel requested.
local worker, lease_ms = str_arg(3, 'worker'), int_arg(4, 'lease_ms', 1)
local ttl = int_arg(5, 'worker hash ttl', 0)
local beat_at = int_arg(6, 'heartbeat_at', 0)
local readings = ARGV[7] or ''
if #ARGV % 2 ~= 1 then bad('scene ids and attempts must come in pairs') end
redis.call('ZADD', 'sf:workers', now, worker)
if ttl > 0 then
  local wk = 'sf:worker:' .. worker
  if readings ~= '' then
    redis.call('HSET', wk, 'heartbeat_at', beat_at, 'readings', readings)
  else
    redis.call('HSET', wk, 'heartbeat_at', beat_at)
  end
  redis.call('EXPIRE', wk, ttl)
end
local out = {}
for i = 8, #ARGV, 2 do
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

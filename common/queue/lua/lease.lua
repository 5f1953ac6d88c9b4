-- ARGV[3] worker, [4] lease_ms
-- Moves due delayed scenes to pending, then leases the first pending scene.
-- Returns {id, attempt, doc, run, retry_budget, failures, enqueued_at, failed_attempt}, nil when
-- none is pending, or the string 'paused' when the queue is paused (pause.lua): due delayed
-- scenes are still promoted, nothing is leased. failed_attempt: the last attempt that failed (0: none); later ones were cut
-- short (reclaimed, released), so their render may be adopted.
local worker, lease_ms = str_arg(3, 'worker'), int_arg(4, 'lease_ms', 1)
local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', P .. 'delayed', id)
  local h = redis.call('HMGET', skey(id), 'priority', 'seq')
  if tonumber(h[1]) and tonumber(h[2]) then
    to_pending(id, h[1], h[2])
  elseif h[1] or h[2] then  -- a damaged record: kept aside an hour for an operator, not lost
    redis.call('ZADD', P .. 'delayed', now + 3600000, id)
  end  -- no record at all: nothing to promote
end
if redis.call('EXISTS', P .. 'paused') == 1 then return 'paused' end
local first = redis.call('ZRANGE', P .. 'pending', 0, 0)
if #first == 0 then return nil end
local id = first[1]
redis.call('ZREM', P .. 'pending', id)
redis.call('ZREM', P .. 'pending_since', id)
local attempt = redis.call('HINCRBY', skey(id), 'attempts', 1)
redis.call('HSET', skey(id), 'state', 'leased', 'worker', worker, 'leased_at', now)
redis.call('ZADD', P .. 'leased', now + lease_ms, id)
redis.call('SADD', P .. 'wl:' .. worker, id)
local h = redis.call('HMGET', skey(id), 'doc', 'run', 'retry_budget', 'failures', 'enqueued_at',
                     'available_at', 'failed_attempt')
observe('queue_wait', WAIT_BUCKETS, math.max(0, now - tonumber(h[6] or now)) / 1000)
event(id, h[2], 'leased', attempt, worker)
return {id, attempt, h[1], h[2], h[3], h[4], h[5], h[7] or '0'}

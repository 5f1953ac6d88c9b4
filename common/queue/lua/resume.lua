-- ARGV[3] worker, [4] lease_ms
-- A restarted worker takes back the scenes its id still holds: each gets a new attempt (the old
-- one is fenced off) and a fresh lease. Returns a list of {id, attempt, doc, run, retry_budget,
-- failures, enqueued_at, failed_attempt}.
local worker, lease_ms = str_arg(3, 'worker'), int_arg(4, 'lease_ms', 1)
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', P .. 'wl:' .. worker)) do
  local h = redis.call('HMGET', skey(id), 'state', 'worker', 'run', 'retry_budget', 'failures',
                       'enqueued_at', 'failed_attempt')
  if h[1] == 'leased' and h[2] == worker then
    local doc = scene_doc(id)
    local attempt = redis.call('HINCRBY', skey(id), 'attempts', 1)
    redis.call('HSET', skey(id), 'leased_at', now)
    redis.call('ZADD', P .. 'leased', now + lease_ms, id)
    event(id, h[3], 'resumed', attempt, worker)
    out[#out + 1] = {id, attempt, doc, h[3], h[4], h[5], h[6], h[7] or '0'}
  else
    redis.call('SREM', P .. 'wl:' .. worker, id)
  end
end
return out

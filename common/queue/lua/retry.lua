-- ARGV[3] id, [4] actor (who asked: recorded as the event's `by`; optional)
-- A dead-lettered scene goes back to pending with a fresh retry budget.
-- Returns 1, or the state it is in when that is not 'dead' ('' when unknown).
local id = str_arg(3, 'scene id')
local by = ARGV[4] or ''
local h = redis.call('HMGET', skey(id), 'state', 'run', 'priority', 'seq', 'attempts')
if h[1] ~= 'dead' then return h[1] or '' end
if not tonumber(h[3]) or not tonumber(h[4]) then
  bad('scene ' .. id .. ' has no priority or seq: nothing changed')
end
redis.call('ZREM', P .. 'dead', id)
redis.call('HSET', skey(id), 'failures', 0, 'reclaims', 0, 'outage_releases', 0)
redis.call('HDEL', skey(id), 'reason', 'finished_at')
to_pending(id, h[3], h[4])
run_moved(h[2], 'dead', nil)
count('retried_from_dead')
event(id, h[2], 'retried_from_dead', h[5], '', '', by)
return 1

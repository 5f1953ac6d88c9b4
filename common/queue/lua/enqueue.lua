-- ARGV[3] id, [4] run, [5] priority, [6] retry_budget, [7] scene document (JSON)
-- Returns 1, or 0 when a scene with this id exists and has not been purged.
local id, run = ARGV[3], ARGV[4]
if redis.call('EXISTS', skey(id)) == 1 then return 0 end
local seq = redis.call('INCR', P .. 'seq')
redis.call('HSET', skey(id), 'doc', ARGV[7], 'run', run, 'priority', ARGV[5], 'seq', seq,
           'retry_budget', ARGV[6], 'attempts', 0, 'failures', 0, 'reclaims', 0,
           'enqueued_at', now)
to_pending(id, ARGV[5], seq)
redis.call('HINCRBY', P .. 'run:' .. run, 'total', 1)
redis.call('SADD', P .. 'runs', run)
redis.call('SADD', 'sf:queues', string.sub(P, 5, -3))
count('enqueued')
event(id, run, 'enqueued', 0)
return 1

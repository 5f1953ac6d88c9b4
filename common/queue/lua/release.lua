-- ARGV[3] worker, [4] id, [5] attempt, [6] reason
-- Gives a leased scene back without spending its retry budget (graceful shutdown, pipelined
-- scenes not started). It keeps its place: the front of its priority. Returns 1, or 0 when fenced.
local worker, id, attempt = ARGV[3], ARGV[4], ARGV[5]
if not owned(id, worker, attempt) then return 0 end
unlease(id, worker)
local h = redis.call('HMGET', skey(id), 'priority', 'seq', 'run')
to_pending(id, h[1], h[2])
redis.call('HDEL', skey(id), 'worker')
count('released')
event(id, h[3], 'released', attempt, worker, ARGV[6])
return 1

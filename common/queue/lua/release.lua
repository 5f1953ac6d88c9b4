-- ARGV[3] worker, [4] id, [5] attempt, [6] reason
-- Gives a leased scene back without spending its retry budget (graceful shutdown, pipelined
-- scenes not started). It keeps its place: the front of its priority. Returns 1, or 0 when fenced
-- (1 again for the same worker and attempt retrying after a lost reply).
local worker, id = str_arg(3, 'worker'), str_arg(4, 'scene id')
local attempt = int_arg(5, 'attempt', 1)
if not owned(id, worker, attempt) then return replay(id, worker, attempt) end
local h = redis.call('HMGET', skey(id), 'priority', 'seq', 'run')
if not tonumber(h[1]) or not tonumber(h[2]) then
  bad('scene ' .. id .. ' has no priority or seq: nothing changed')
end
unlease(id, worker)
to_pending(id, h[1], h[2])
redis.call('HDEL', skey(id), 'worker')
count('released')
event(id, h[3], 'released', attempt, worker, ARGV[6])
answered(id, worker, attempt, 1)
return 1

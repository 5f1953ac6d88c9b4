-- ARGV[3] worker, [4] id, [5] attempt, [6] reason, [7] outage (1: its ComfyUI was down or hung,
-- 0 or absent: shutdown, pipelined), [8] max outage releases (default 10), [9] retention seconds
-- of a finished run's record (default 7 days)
-- Gives a leased scene back without spending its retry budget (graceful shutdown, pipelined
-- scenes not started, a ComfyUI outage). It keeps its place: the front of its priority. A scene
-- released for an outage max outage releases times is dead-lettered instead (reason "comfyui
-- outage: ..."): it does not bounce between workers forever. Returns 1 (released), 2
-- (dead-lettered), 3 (dead-lettered, and a finished run waits to be assembled), or 0 when fenced
-- (the same answer again for the same worker and attempt retrying after a lost reply).
local worker, id = str_arg(3, 'worker'), str_arg(4, 'scene id')
local attempt = int_arg(5, 'attempt', 1)
local outage = ARGV[7] == '1'
if ARGV[7] and ARGV[7] ~= '' and ARGV[7] ~= '0' and ARGV[7] ~= '1' then
  bad('outage (argument 7) must be 0 or 1')
end
local max_outage = 10
if ARGV[8] and ARGV[8] ~= '' then max_outage = int_arg(8, 'max outage releases', 1) end
local retention = 7 * 86400
if ARGV[9] and ARGV[9] ~= '' then retention = int_arg(9, 'retention seconds', 1) end
if not owned(id, worker, attempt) then return replay(id, worker, attempt) end
local h = redis.call('HMGET', skey(id), 'priority', 'seq', 'run', 'outage_releases')
if not tonumber(h[1]) or not tonumber(h[2]) then
  bad('scene ' .. id .. ' has no priority or seq: nothing changed')
end
local outages = (tonumber(h[4]) or 0) + (outage and 1 or 0)
local dead = outage and outages >= max_outage
if dead and not h[3] then bad('scene ' .. id .. ' has no run: nothing changed') end
unlease(id, worker)
redis.call('HDEL', skey(id), 'worker')
if outage then redis.call('HSET', skey(id), 'outage_releases', outages) end
if dead then
  local reason = 'comfyui outage: released ' .. outages .. ' times without rendering (last: ' ..
                 (ARGV[6] or '') .. ')'
  redis.call('HSET', skey(id), 'state', 'dead', 'reason', reason, 'finished_at', now)
  redis.call('ZADD', P .. 'dead', now, id)
  count('dead_lettered')
  run_moved(h[3], nil, 'dead', retention)
  event(id, h[3], 'dead_lettered', attempt, worker, reason)
  local reply = 2
  if runs_to_assemble() then reply = 3 end
  answered(id, worker, attempt, reply)
  return reply
end
to_pending(id, h[1], h[2])
count('released')
event(id, h[3], 'released', attempt, worker, ARGV[6])
answered(id, worker, attempt, 1)
return 1

-- ARGV[3] worker, [4] id, [5] attempt, [6] reason, [7] permanent (1/0), [8] backoff_ms,
-- [9] outcome: 'failed' (spends the retry budget) or 'cancelled' (the worker stopped it on request)
-- [10] HistoryExitReason of the attempt ('' when none), counted as exit_<reason>
-- [11] the attempt's fallback reasons, comma-separated, each counted as fallback_<reason>
-- [12] retention seconds of a cancelled scene's record and of a finished run's (default 7 days)
-- Returns 'delayed', 'dead', 'cancelled' (with ':run_complete' appended when a finished run waits
-- to be assembled: this scene's, or one a reclaim or cancel finished), or 0 when fenced. The same worker failing the same attempt again (a retry after
-- a lost reply) gets the first call's answer.
local worker, id = str_arg(3, 'worker'), str_arg(4, 'scene id')
local attempt = int_arg(5, 'attempt', 1)
local reason = ARGV[6] or ''
if ARGV[7] ~= '0' and ARGV[7] ~= '1' then bad('permanent (argument 7) must be 0 or 1') end
local backoff_ms = int_arg(8, 'backoff_ms', 0)
local outcome = ARGV[9]
if outcome ~= 'failed' and outcome ~= 'cancelled' then
  bad("outcome (argument 9) must be 'failed' or 'cancelled'")
end
local retention = 7 * 86400
if ARGV[12] and ARGV[12] ~= '' then retention = int_arg(12, 'retention seconds', 1) end
if not owned(id, worker, attempt) then return replay(id, worker, attempt) end
local h = redis.call('HMGET', skey(id), 'run', 'retry_budget', 'failures')
local run = h[1]
if not run then bad('scene ' .. id .. ' has no run: nothing changed') end
local budget, failures = tonumber(h[2]), (tonumber(h[3]) or 0) + 1
if outcome == 'failed' and ARGV[7] ~= '1' and not budget then
  bad('scene ' .. id .. ' has no retry_budget: nothing changed')
end

unlease(id, worker)
if ARGV[10] and ARGV[10] ~= '' then count('exit_' .. ARGV[10]) end
for r in string.gmatch(ARGV[11] or '', '[^,]+') do count('fallback_' .. r) end
local reply
if outcome == 'cancelled' then
  redis.call('HSET', skey(id), 'state', 'cancelled', 'finished_at', now, 'reason', reason)
  count('cancelled')
  run_moved(run, nil, 'cancelled', retention)
  event(id, run, 'cancelled', attempt, worker, reason)
  reply = 'cancelled'
  scene_expire(id, retention)
elseif ARGV[7] == '1' or failures > budget then
  redis.call('HSET', skey(id), 'failed_attempt', attempt, 'failures', failures)
  count('failed')
  redis.call('HSET', skey(id), 'state', 'dead', 'reason', reason, 'finished_at', now)
  redis.call('ZADD', P .. 'dead', now, id)
  count('dead_lettered')
  run_moved(run, nil, 'dead', retention)
  event(id, run, 'dead_lettered', attempt, worker, reason)
  reply = 'dead'
else
  redis.call('HSET', skey(id), 'failed_attempt', attempt, 'failures', failures)
  count('failed')
  redis.call('HSET', skey(id), 'state', 'delayed', 'reason', reason)
  redis.call('ZADD', P .. 'delayed', now + backoff_ms, id)
  wake()  -- an idle worker learns when it is due, and blocks no longer than that
  count('retried')
  event(id, run, 'retried', attempt, worker, reason)
  reply = 'delayed'
end
if runs_to_assemble() then reply = reply .. ':run_complete' end
answered(id, worker, attempt, reply)
return reply

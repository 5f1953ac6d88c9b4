-- ARGV[3] worker, [4] id, [5] attempt, [6] reason, [7] permanent (1/0), [8] backoff_ms,
-- [9] outcome: 'failed' (spends the retry budget) or 'cancelled' (the worker stopped it on request)
-- [10] HistoryExitReason of the attempt ('' when none), counted as exit_<reason>
-- [11] the attempt's fallback reasons, comma-separated, each counted as fallback_<reason>
-- Returns 'delayed', 'dead', 'cancelled' (with ':run_complete' appended when that finished the
-- scene's run), or 0 when fenced.
local worker, id, attempt, reason = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if not owned(id, worker, attempt) then return 0 end
unlease(id, worker)
local run = redis.call('HGET', skey(id), 'run')
if ARGV[9] ~= 'cancelled' then redis.call('HSET', skey(id), 'failed_attempt', attempt) end
if ARGV[10] and ARGV[10] ~= '' then count('exit_' .. ARGV[10]) end
for r in string.gmatch(ARGV[11] or '', '[^,]+') do count('fallback_' .. r) end
if ARGV[9] == 'cancelled' then
  redis.call('HSET', skey(id), 'state', 'cancelled', 'finished_at', now, 'reason', reason)
  count('cancelled')
  local run_done = run_finished(run, 'cancelled', 1)
  event(id, run, 'cancelled', attempt, worker, reason)
  if run_done then return 'cancelled:run_complete' end
  return 'cancelled'
end
local failures = redis.call('HINCRBY', skey(id), 'failures', 1)
local budget = tonumber(redis.call('HGET', skey(id), 'retry_budget'))
count('failed')
if ARGV[7] == '1' or failures > budget then
  redis.call('HSET', skey(id), 'state', 'dead', 'reason', reason, 'finished_at', now)
  redis.call('ZADD', P .. 'dead', now, id)
  count('dead_lettered')
  local run_done = run_finished(run, 'dead', 1)
  event(id, run, 'dead_lettered', attempt, worker, reason)
  if run_done then return 'dead:run_complete' end
  return 'dead'
end
redis.call('HSET', skey(id), 'state', 'delayed', 'reason', reason)
redis.call('ZADD', P .. 'delayed', now + tonumber(ARGV[8]), id)
count('retried')
event(id, run, 'retried', attempt, worker, reason)
return 'delayed'

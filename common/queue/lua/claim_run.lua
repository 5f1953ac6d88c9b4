-- ARGV[3] run, [4] claim length in ms
-- Claims a finished run for assembly, under a deadline: from `runs_finished`, or a claim in
-- `runs_claimed` whose deadline has passed (its holder died or hung before it finished). The
-- claimant removes the claim (run_assembled.lua) only after the run's files are written, so a
-- run is assembled at least once whoever dies, and by one claimant at a time. Returns the new
-- claim's deadline (the claim's token), or 0 when the run is not there or claimed by another.
local run = str_arg(3, 'run')
local claim_ms = int_arg(4, 'claim length', 1)
local deadline = now + claim_ms
if redis.call('SREM', P .. 'runs_finished', run) == 1 then
  redis.call('ZADD', P .. 'runs_claimed', deadline, run)
  return deadline
end
local held = tonumber(redis.call('ZSCORE', P .. 'runs_claimed', run))
if held and held <= now then
  redis.call('ZADD', P .. 'runs_claimed', deadline, run)
  return deadline
end
return 0

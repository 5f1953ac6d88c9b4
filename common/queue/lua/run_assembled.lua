-- ARGV[3] run, [4] the claim's deadline (claim_run.lua's answer)
-- Ends a claim once the run's files are written. Only that claim: a claim that expired and was
-- taken over by another claimant has another deadline and is left to it. Returns 1, or 0 when
-- the claim is no longer this one.
local run = str_arg(3, 'run')
local token = int_arg(4, 'claim deadline', 1)
if tonumber(redis.call('ZSCORE', P .. 'runs_claimed', run)) ~= token then return 0 end
redis.call('ZREM', P .. 'runs_claimed', run)
return 1

-- ARGV[3] worker, [4] id, [5] attempt, [6] result (JSON, stored as is), [7] retention seconds
-- Returns 1, 2 when a finished run waits to be assembled (this scene's, when this ack finished
-- it, or one a reclaim or cancel finished), or 0 when the lease is no longer this worker's
-- (fenced: nothing changes). The same worker acking the same attempt again (a retry
-- after a lost reply) gets the first call's answer.
-- The result's seed-001 telemetry feeds the counters and histograms the exporter publishes.
local worker, id = str_arg(3, 'worker'), str_arg(4, 'scene id')
local attempt = int_arg(5, 'attempt', 1)
local retention = int_arg(7, 'retention seconds', 1)
return (ack_scene(worker, id, attempt, ARGV[6], retention))

-- ARGV[3] worker, [4] lease_ms
-- Moves due delayed scenes to pending, then leases the first pending scene.
-- Returns {id, attempt, doc, run, retry_budget, failures, enqueued_at, failed_attempt}; when
-- none is pending, the milliseconds until the first delayed scene is due (-1: none delayed), so
-- that an idle worker blocks no longer than that; or the string 'paused' when the queue is
-- paused (pause.lua): due delayed scenes are still promoted, nothing is leased. failed_attempt:
-- the last attempt that failed (0: none); later ones were cut short (reclaimed, released), so
-- their render may be adopted.
local worker, lease_ms = str_arg(3, 'worker'), int_arg(4, 'lease_ms', 1)
local leased = lease_first(worker, lease_ms)
if leased == nil then return next_due_in() end
return leased

-- ARGV[3] worker, [4] id, [5] attempt, [6] result (JSON, stored as is), [7] retention seconds
-- Returns 1, or 0 when the lease is no longer this worker's (fenced: nothing changes).
local worker, id, attempt = ARGV[3], ARGV[4], ARGV[5]
if not owned(id, worker, attempt) then return 0 end
unlease(id, worker)
local h = redis.call('HMGET', skey(id), 'run', 'leased_at', 'enqueued_at')
redis.call('HSET', skey(id), 'state', 'succeeded', 'finished_at', now, 'result', ARGV[6])
redis.call('HDEL', skey(id), 'reason', 'cancel_requested')
redis.call('EXPIRE', skey(id), tonumber(ARGV[7]))
count('succeeded')
observe('duration', DURATION_BUCKETS, (now - tonumber(h[2])) / 1000)
observe('end_to_end', DURATION_BUCKETS, (now - tonumber(h[3])) / 1000)
run_finished(h[1], 'succeeded', 1)
event(id, h[1], 'succeeded', attempt, worker)
return 1

-- ARGV[3] worker, [4] id, [5] attempt, [6] result (JSON, stored as is), [7] retention seconds
-- Returns 1, 2 when this ack finished the scene's run, or 0 when the lease is no longer this
-- worker's (fenced: nothing changes).
-- The result's seed-001 telemetry feeds the counters and histograms the exporter publishes.
local worker, id, attempt = ARGV[3], ARGV[4], ARGV[5]
if not owned(id, worker, attempt) then return 0 end
unlease(id, worker)
local h = redis.call('HMGET', skey(id), 'run', 'leased_at', 'enqueued_at')
redis.call('HSET', skey(id), 'state', 'succeeded', 'finished_at', now, 'result', ARGV[6])
redis.call('HDEL', skey(id), 'reason', 'cancel_requested')
redis.call('EXPIRE', skey(id), tonumber(ARGV[7]))
count('succeeded')
local duration = (now - tonumber(h[2])) / 1000
local ok, res = pcall(cjson.decode, ARGV[6])
local t = ok and type(res) == 'table' and res.telemetry or nil
if ok and type(res) == 'table' and type(res.fallback_reasons) == 'table' then
  for _, r in ipairs(res.fallback_reasons) do
    if type(r) == 'string' then count('fallback_' .. r) end
  end
end
if type(t) == 'table' then
  if type(t.DurationSeconds) == 'number' then duration = t.DurationSeconds end
  if type(t.HistoryExitReason) == 'string' then count('exit_' .. t.HistoryExitReason) end
  if t.DoneMarkerDetected == true then
    count('completion_done_marker')
    if type(t.DoneMarkerWaitSeconds) == 'number' then
      observe('done_marker_wait', WAIT_BUCKETS, t.DoneMarkerWaitSeconds)
    end
  elseif t.ForcedCopyTriggered == true then
    count('completion_forced_copy')
  end
  if type(t.FrameCount) == 'number' then
    observe('frames', FRAME_BUCKETS, t.FrameCount)
    count('frames', t.FrameCount)
    if type(res.expected_frames) == 'number' and res.expected_frames > t.FrameCount then
      count('frames_short')
    end
  end
end
observe('duration', DURATION_BUCKETS, duration)
observe('end_to_end', DURATION_BUCKETS, (now - tonumber(h[3])) / 1000)
local run_done = run_finished(h[1], 'succeeded', 1)
event(id, h[1], 'succeeded', attempt, worker)
if run_done then return 2 end
return 1

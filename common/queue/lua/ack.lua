-- ARGV[3] worker, [4] id, [5] attempt, [6] result (JSON, stored as is), [7] retention seconds
-- Returns 1, 2 when a finished run waits to be assembled (this scene's, when this ack finished
-- it, or one a reclaim or cancel finished), or 0 when the lease is no longer this worker's
-- (fenced: nothing changes). The same worker acking the same attempt again (a retry
-- after a lost reply) gets the first call's answer.
-- The result's seed-001 telemetry feeds the counters and histograms the exporter publishes.
local worker, id = str_arg(3, 'worker'), str_arg(4, 'scene id')
local attempt = int_arg(5, 'attempt', 1)
local retention = int_arg(7, 'retention seconds', 1)
if not owned(id, worker, attempt) then return replay(id, worker, attempt) end
-- Everything is read and computed first; the writes below cannot fail.
local h = redis.call('HMGET', skey(id), 'run', 'leased_at', 'enqueued_at')
if not h[1] then bad('scene ' .. id .. ' has no run: nothing changed') end
local leased_at, enqueued_at = tonumber(h[2]) or now, tonumber(h[3]) or now
local duration = (now - leased_at) / 1000
local counts, observations = {}, {}
-- Seconds a histogram can take: finite, not negative, and far from HINCRBYFLOAT's overflow.
local function seconds(x) return finite(x) and x >= 0 and x < 1e12 end
local ok, res = pcall(cjson.decode, ARGV[6])
if not ok or type(res) ~= 'table' then res = {} end
if type(res.fallback_reasons) == 'table' then
  for _, r in ipairs(res.fallback_reasons) do
    if type(r) == 'string' and r ~= '' then counts[#counts + 1] = {'fallback_' .. r, 1} end
  end
end
local t = res.telemetry
if type(t) == 'table' then
  if seconds(t.DurationSeconds) then duration = t.DurationSeconds end
  if type(t.HistoryExitReason) == 'string' and t.HistoryExitReason ~= '' then
    counts[#counts + 1] = {'exit_' .. t.HistoryExitReason, 1}
  end
  if t.DoneMarkerDetected == true then
    counts[#counts + 1] = {'completion_done_marker', 1}
    if seconds(t.DoneMarkerWaitSeconds) then
      observations[#observations + 1] = {'done_marker_wait', WAIT_BUCKETS, t.DoneMarkerWaitSeconds}
    end
  elseif t.ForcedCopyTriggered == true then
    counts[#counts + 1] = {'completion_forced_copy', 1}
  end
  local frames = t.FrameCount
  if finite(frames) and frames >= 0 and frames == math.floor(frames) and frames < 2 ^ 53 then
    observations[#observations + 1] = {'frames', FRAME_BUCKETS, frames}
    counts[#counts + 1] = {'frames', frames}
    if finite(res.expected_frames) and res.expected_frames > frames then
      counts[#counts + 1] = {'frames_short', 1}
    end
  end
end
observations[#observations + 1] = {'duration', DURATION_BUCKETS, duration}
observations[#observations + 1] = {'end_to_end', DURATION_BUCKETS, (now - enqueued_at) / 1000}

unlease(id, worker)
redis.call('HSET', skey(id), 'state', 'succeeded', 'finished_at', now, 'result', ARGV[6])
redis.call('HDEL', skey(id), 'reason', 'cancel_requested')
count('succeeded')
for _, c in ipairs(counts) do count(c[1], c[2]) end
for _, o in ipairs(observations) do observe(o[1], o[2], o[3]) end
run_moved(h[1], nil, 'succeeded', retention)
event(id, h[1], 'succeeded', attempt, worker)
local reply = runs_to_assemble() and 2 or 1
answered(id, worker, attempt, reply)
redis.call('EXPIRE', skey(id), retention)
return reply

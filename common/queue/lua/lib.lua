-- Prepended to every queue script at build time, each top-level definition only to the scripts
-- that use it (cmake/embed_lua.cmake: a definition's right side gives its name a value and does
-- nothing else). The persistent format is documented in docs/queue-protocol.md; never change
-- the meaning of a key or field in place.
-- ARGV[1]: key prefix "sf:{QUEUE}:"; ARGV[2]: now in ms, 0 = the Redis server's clock.
-- A script reads and checks everything before its first write: Redis does not roll back a
-- script that fails halfway, so a late error would leave a scene in two places or in none.
local function bad(what) error({err = 'ERR scenefarm: ' .. what}) end
local P = ARGV[1]
if type(P) ~= 'string' or not string.match(P, '^sf:{[^{}]+}:$') then
  bad('key prefix must be sf:{QUEUE}:')
end
local now = tonumber(ARGV[2])
if not now or now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A whole number as the decimal string Redis would make of it. A Lua number handed to redis.call
-- is formatted by snprintf("%.17g"), which costs a microsecond or more for a timestamp in ms
-- (issue #14 P3: some 25 such numbers a scene); string.format('%d') writes the same digits in
-- a fraction of that. Any other number (a fraction, a huge or odd one) is left to Redis as
-- before; anything else becomes tostring's (a string as it is; false, an absent hash field, as
-- 'false', as the events wrote it before).
local function num(x)
  if type(x) ~= 'number' then return tostring(x) end
  if x == math.floor(x) and x > -2 ^ 53 and x < 2 ^ 53 then return string.format('%d', x) end
  return x
end
local NOW = num(now)  -- now, as redis.call's arguments take it
local EVENTS_MAXLEN = '100000'
local PRIORITY_SPAN = 2199023255552 -- 2^41 sequence numbers per priority level
local DURATION_BUCKETS = {'1', '2', '5', '10', '20', '30', '45', '60', '90', '120', '140', '180',
                          '240', '300', '600', '1200', '1800', '3600'}
local FRAME_BUCKETS = {'0', '1', '5', '10', '16', '21', '22', '23', '24', '30', '48', '60', '96',
                       '120', '240', '480'}
local WAIT_BUCKETS = {'0.1', '0.5', '1', '2', '5', '10', '30', '60', '120', '300', '600', '1800',
                      '3600', '7200'}

local function skey(id) return P .. 'scene:' .. id end
-- The scene's document, a string beside its hash (issue #14 P6): without it the hash's values
-- stay short and Redis keeps the hash as a listpack. Scenes enqueued before the doc key existed
-- hold their document in the hash's `doc` field instead: read them with scene_doc.
local function dkey(id) return P .. 'doc:' .. id end

-- The scene document of id (false when it has none): its doc key, or the hash's `doc` field of
-- a scene enqueued by a version that wrote no doc key (an upgrade with scenes in Redis).
local function scene_doc(id)
  local d = redis.call('GET', dkey(id))
  if d then return d end
  return redis.call('HGET', skey(id), 'doc')
end

-- Where enqueue writes a new scene's document, from the global key sf:doc_storage
-- (docs/queue-protocol.md, "Upgrading to the doc key"): true = the hash's `doc` field, the
-- format versions before the doc key read (set while such a version may run: a rolling upgrade,
-- a rollback); false = the doc key (absent or "key"). Anything else is refused: call it before
-- the script's first write.
local function doc_in_hash()
  local mode = redis.pcall('GET', 'sf:doc_storage')
  if type(mode) == 'table' and mode.err then
    bad('sf:doc_storage must be a string ("key" or "hash"): ' .. mode.err)
  end
  if not mode or mode == 'key' then return false end
  if mode == 'hash' then return true end
  bad('sf:doc_storage must be "key" or "hash", got "' .. mode .. '"; set it with ' ..
      '`scenefarm doc-storage key|hash`')
end

-- A new scene's hash, pending, in one HSET (to_pending's fields included); with `doc` (while
-- sf:doc_storage is "hash": the earlier versions' format) its document in the hash's `doc`
-- field, after deleting a doc key an earlier version left behind (it would shadow the document
-- for every reader: scene_doc prefers the key). Without, the caller writes the doc key.
local function new_scene_hash(id, run, priority, seq, budget, doc)
  local fields = {'run', run, 'priority', num(priority), 'seq', num(seq),
                  'retry_budget', num(budget), 'attempts', '0', 'failures', '0', 'reclaims', '0',
                  'enqueued_at', NOW, 'state', 'pending', 'available_at', NOW}
  if doc then
    redis.call('DEL', dkey(id))
    fields[#fields + 1] = 'doc'
    fields[#fields + 1] = doc
  end
  redis.call('HSET', skey(id), unpack(fields))
end

-- A scene's hash and its doc key live and die together: every TTL, PERSIST or DEL of a scene
-- goes through these, never to skey alone.
local function scene_expire(id, seconds)
  redis.call('EXPIRE', skey(id), num(seconds))
  redis.call('EXPIRE', dkey(id), num(seconds))
end
local function scene_persist(id)
  redis.call('PERSIST', skey(id))
  redis.call('PERSIST', dkey(id))
end
local function scene_del(id) redis.call('DEL', skey(id), dkey(id)) end

-- by: who asked for it (an operator's action: "cli:USER", "api:USER"); omitted when empty.
local function event(id, run, name, attempt, worker, reason, by)
  if by and by ~= '' then
    redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'scene', id, 'run', run,
               'event', name, 'attempt', num(attempt), 'worker', worker or '',
               'reason', reason or '', 'by', by)
    return
  end
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'scene', id, 'run', run,
             'event', name, 'attempt', num(attempt), 'worker', worker or '',
             'reason', reason or '')
end

local function count(field, n) redis.call('HINCRBY', P .. 'stats', field, num(n or 1)) end

-- Non-cumulative bucket counts; the exporter accumulates them into a Prometheus histogram.
local function observe(name, buckets, seconds)
  local h = P .. 'h:' .. name
  local field = '+Inf'
  for _, b in ipairs(buckets) do
    if seconds <= tonumber(b) then field = b; break end
  end
  redis.call('HINCRBY', h, field, '1')
  redis.call('HINCRBYFLOAT', h, 'sum', num(seconds))
  redis.call('HINCRBY', h, 'count', '1')
end

-- Idle workers block on the queue's wake list (BLPOP sf:{Q}:wake, docs/queue-protocol.md):
-- whatever makes a scene leasable (or delayed: the woken worker learns when it is due) pushes
-- one token, at most once per script call, and the list never holds more than one: a woken
-- worker that leaves scenes pending pushes it again (lease), so N idle workers wake for N scenes.
local woken = {}
local function wake()
  if woken[P] then return end
  woken[P] = true
  if redis.call('LLEN', P .. 'wake') == 0 then redis.call('RPUSH', P .. 'wake', '1') end
end

-- The pending score: higher priority first, first in first out within a priority.
local function pending_score(priority, seq)
  return (1000 - tonumber(priority)) * PRIORITY_SPAN + tonumber(seq)
end

-- Scene id into the pending sets, without its hash's state (enqueue writes that with the rest
-- of the new hash, in one HSET).
local function into_pending(id, priority, seq)
  wake()
  redis.call('ZADD', P .. 'pending', num(pending_score(priority, seq)), id)
  redis.call('ZADD', P .. 'pending_since', NOW, id)
end

local function to_pending(id, priority, seq)
  into_pending(id, priority, seq)
  redis.call('HSET', skey(id), 'state', 'pending', 'available_at', NOW)
end

-- ARGV[i] as a whole number >= min; anything else is refused before a write.
local function int_arg(i, name, min)
  local v = tonumber(ARGV[i])
  if not v or v ~= math.floor(v) or v ~= v or v == math.huge or v < (min or -math.huge) then
    bad(name .. ' (argument ' .. i .. ') must be a whole number' ..
        (min and (' >= ' .. min) or '') .. ', got ' .. tostring(ARGV[i]))
  end
  return v
end

-- ARGV[i] as a non-empty string.
local function str_arg(i, name)
  if type(ARGV[i]) ~= 'string' or ARGV[i] == '' then
    bad(name .. ' (argument ' .. i .. ') must not be empty')
  end
  return ARGV[i]
end

-- A finite number (telemetry values feed HINCRBYFLOAT, which refuses NaN and infinities).
local function finite(x) return type(x) == 'number' and x == x and x > -math.huge and x < math.huge end

-- A hash field's value as the whole number HINCRBY would read in it (decimal digits, no sign,
-- no leading zero, below 2^53), nil for anything else.
local function int_field(v)
  if type(v) ~= 'string' or not (v == '0' or string.match(v, '^[1-9]%d*$')) then return nil end
  local n = tonumber(v)
  if n < 2 ^ 53 then return n end
  return nil
end

-- A scene moves between the run's terminal counts: from 'succeeded', 'dead' or 'cancelled' (or
-- nil: it was not finished) to one of them (or nil: it is open again). When the run goes from
-- open to finished, it joins `runs_finished` (a worker or `scenefarm repair` claims it there
-- and assembles its artifacts) and its hash expires after `retention` seconds; reopened, it
-- persists. runs_completed counts each run once, however often it closes again.
-- Returns true when this move finished the run.
local function run_moved(run, from, to, retention)
  local r = P .. 'run:' .. run
  if from and redis.call('EXISTS', r) == 0 then
    -- The run's record expired (its retention passed): what comes back is a run of its own.
    redis.call('HSET', r, 'total', '1')
    from = nil
  end
  if from then redis.call('HINCRBY', r, from, '-1') end
  if to then redis.call('HINCRBY', r, to, '1') end
  local h = redis.call('HMGET', r, 'total', 'succeeded', 'dead', 'cancelled')
  local done = (tonumber(h[2]) or 0) + (tonumber(h[3]) or 0) + (tonumber(h[4]) or 0)
  if done >= (tonumber(h[1]) or 0) then
    if redis.call('SREM', P .. 'runs', run) == 1 then
      if redis.call('HSETNX', r, 'completed_counted', 1) == 1 then count('runs_completed') end
      redis.call('SADD', P .. 'runs_finished', run)
      if retention then redis.call('EXPIRE', r, num(retention)) end
      return true
    end
    if retention then redis.call('EXPIRE', r, num(retention)) end
    return false
  end
  redis.call('SADD', P .. 'runs', run)
  redis.call('PERSIST', r)
  return false
end

-- True when a finished run waits for a worker to claim and assemble it (this call's run, one
-- a reclaim or a cancel finished, or one whose claimant died: its claim expired in
-- `runs_claimed`): ack and fail then tell their worker to look.
local function runs_to_assemble()
  return redis.call('SCARD', P .. 'runs_finished') > 0 or
         redis.call('ZCOUNT', P .. 'runs_claimed', '-inf', NOW) > 0
end

-- Fencing: only the worker holding the current attempt may change a leased scene.
-- held: the scene's state, worker and attempts fields, in that order.
local function held_by(held, worker, attempt)
  return held[1] == 'leased' and held[2] == worker and held[3] == tostring(attempt)
end
local function owned(id, worker, attempt)
  return held_by(redis.call('HMGET', skey(id), 'state', 'worker', 'attempts'), worker, attempt)
end

-- The answer a fenced call (ack, fail, release) gave, kept on the scene so that the same worker
-- retrying the same attempt (its first call committed but the reply was lost) gets it again.
local function answer_fields(worker, attempt, reply)
  return 'answered', worker .. '/' .. attempt, 'answer', tostring(reply)
end
local function answered(id, worker, attempt, reply)
  redis.call('HSET', skey(id), answer_fields(worker, attempt, reply))
end

-- The recorded answer to this worker's call for this attempt, or 0 (fenced: nothing changes).
local function replay(id, worker, attempt)
  local h = redis.call('HMGET', skey(id), 'answered', 'answer')
  if h[1] == worker .. '/' .. attempt and h[2] then
    return tonumber(h[2]) or h[2]
  end
  return 0
end

local function unlease(id, worker)
  redis.call('ZREM', P .. 'leased', id)
  redis.call('SREM', P .. 'wl:' .. worker, id)
end

-- Lease (lease.lua, ack_lease.lua) of queue P: moves due delayed scenes to pending, then leases
-- the first pending scene to worker. Returns {id, attempt, doc, run, retry_budget, failures,
-- enqueued_at, failed_attempt}, nil when none is pending, or 'paused' when the queue is paused
-- (due delayed scenes are still promoted, nothing is leased). When scenes stay pending after
-- this one, the wake is passed on to the next idle worker.
local function lease_first(worker, lease_ms)
  local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'LIMIT', '0', '100')
  for _, id in ipairs(due) do
    redis.call('ZREM', P .. 'delayed', id)
    local h = redis.call('HMGET', skey(id), 'priority', 'seq')
    if tonumber(h[1]) and tonumber(h[2]) then
      to_pending(id, h[1], h[2])
    elseif h[1] or h[2] then  -- a damaged record: kept aside an hour for an operator, not lost
      redis.call('ZADD', P .. 'delayed', now + 3600000, id)
    end  -- no record at all: nothing to promote
  end
  if redis.call('EXISTS', P .. 'paused') == 1 then return 'paused' end
  local first = redis.call('ZRANGE', P .. 'pending', '0', '1')
  if #first == 0 then return nil end
  local id = first[1]
  local doc = scene_doc(id)  -- read before the first write
  local h = redis.call('HMGET', skey(id), 'run', 'retry_budget', 'failures', 'enqueued_at',
                       'available_at', 'failed_attempt', 'attempts')
  -- attempts + 1 written by the HSET below, as HINCRBY would (one call fewer, issue #14 P3);
  -- anything but a plain whole number in the field (a damaged record) goes to HINCRBY as before.
  local attempt = 1
  if h[7] then
    local n = int_field(h[7])
    attempt = n and n + 1  -- nil: HINCRBY below
  end
  if #first > 1 then wake() end
  redis.call('ZREM', P .. 'pending', id)
  redis.call('ZREM', P .. 'pending_since', id)
  if not attempt then attempt = redis.call('HINCRBY', skey(id), 'attempts', '1') end
  redis.call('HSET', skey(id), 'attempts', num(attempt), 'state', 'leased', 'worker', worker,
             'leased_at', NOW)
  redis.call('ZADD', P .. 'leased', num(now + lease_ms), id)
  redis.call('SADD', P .. 'wl:' .. worker, id)
  observe('queue_wait', WAIT_BUCKETS, math.max(0, now - tonumber(h[5] or now)) / 1000)
  event(id, h[1], 'leased', attempt, worker)
  return {id, attempt, doc, h[1], h[2], h[3], h[4], h[6] or '0'}
end

-- Milliseconds until the first delayed scene of queue P is due (0: due now), -1 when none is
-- delayed: an idle worker blocks no longer than that.
local function next_due_in()
  local d = redis.call('ZRANGE', P .. 'delayed', '0', '0', 'WITHSCORES')
  if #d == 0 then return -1 end
  return math.max(0, math.floor(tonumber(d[2]) - now))
end

-- Ack (ack.lua, ack_lease.lua) of scene id in queue P: its result (JSON, stored as is) feeds the
-- counters and histograms. Returns the reply (1; 2 when a finished run waits to be assembled;
-- 0 when fenced; the first call's answer when the same worker acks the same attempt again) and
-- whether this call acked the scene (false: fenced or a replay, nothing changed).
local function ack_scene(worker, id, attempt, result, retention)
  -- owned()'s fields and the ack's in one HMGET (issue #14 P3: a call fewer a scene).
  local s = redis.call('HMGET', skey(id), 'state', 'worker', 'attempts', 'run', 'leased_at',
                       'enqueued_at', 'reason', 'cancel_requested')
  if not held_by(s, worker, attempt) then return replay(id, worker, attempt), false end
  -- Everything is read and computed first; the writes below cannot fail.
  local run = s[4]
  if not run then bad('scene ' .. id .. ' has no run: nothing changed') end
  local leased_at, enqueued_at = tonumber(s[5]) or now, tonumber(s[6]) or now
  local duration = (now - leased_at) / 1000
  local counts, observations = {}, {}
  -- Seconds a histogram can take: finite, not negative, and far from HINCRBYFLOAT's overflow.
  local function seconds(x) return finite(x) and x >= 0 and x < 1e12 end
  local ok, res = pcall(cjson.decode, result)
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
  if s[7] or s[8] then redis.call('HDEL', skey(id), 'reason', 'cancel_requested') end
  count('succeeded')
  for _, c in ipairs(counts) do count(c[1], c[2]) end
  for _, o in ipairs(observations) do observe(o[1], o[2], o[3]) end
  run_moved(run, nil, 'succeeded', retention)
  event(id, run, 'succeeded', attempt, worker)
  local reply = runs_to_assemble() and 2 or 1
  -- The new state and answered()'s fields in one HSET (nothing above reads the scene's hash).
  redis.call('HSET', skey(id), 'state', 'succeeded', 'finished_at', NOW, 'result', result,
             answer_fields(worker, attempt, reply))
  scene_expire(id, retention)
  return reply, true
end

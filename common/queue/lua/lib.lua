-- Prepended to every queue script at build time. The persistent format is documented in
-- docs/queue-protocol.md; never change the meaning of a key or field in place.
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
local EVENTS_MAXLEN = 100000
local PRIORITY_SPAN = 2199023255552 -- 2^41 sequence numbers per priority level
local DURATION_BUCKETS = {'1', '2', '5', '10', '20', '30', '45', '60', '90', '120', '140', '180',
                          '240', '300', '600', '1200', '1800', '3600'}
local FRAME_BUCKETS = {'0', '1', '5', '10', '16', '21', '22', '23', '24', '30', '48', '60', '96',
                       '120', '240', '480'}
local WAIT_BUCKETS = {'0.1', '0.5', '1', '2', '5', '10', '30', '60', '120', '300', '600', '1800',
                      '3600', '7200'}

local function skey(id) return P .. 'scene:' .. id end

-- by: who asked for it (an operator's action: "cli:USER", "api:USER"); omitted when empty.
local function event(id, run, name, attempt, worker, reason, by)
  if by and by ~= '' then
    redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'scene', id, 'run', run,
               'event', name, 'attempt', tostring(attempt), 'worker', worker or '',
               'reason', reason or '', 'by', by)
    return
  end
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'scene', id, 'run', run,
             'event', name, 'attempt', tostring(attempt), 'worker', worker or '',
             'reason', reason or '')
end

local function count(field, n) redis.call('HINCRBY', P .. 'stats', field, n or 1) end

-- Non-cumulative bucket counts; the exporter accumulates them into a Prometheus histogram.
local function observe(name, buckets, seconds)
  local h = P .. 'h:' .. name
  local field = '+Inf'
  for _, b in ipairs(buckets) do
    if seconds <= tonumber(b) then field = b; break end
  end
  redis.call('HINCRBY', h, field, 1)
  redis.call('HINCRBYFLOAT', h, 'sum', seconds)
  redis.call('HINCRBY', h, 'count', 1)
end

-- Higher priority first, first in first out within a priority.
local function to_pending(id, priority, seq)
  redis.call('ZADD', P .. 'pending', (1000 - tonumber(priority)) * PRIORITY_SPAN + tonumber(seq), id)
  redis.call('ZADD', P .. 'pending_since', now, id)
  redis.call('HSET', skey(id), 'state', 'pending', 'available_at', now)
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
    redis.call('HSET', r, 'total', 1)
    from = nil
  end
  if from then redis.call('HINCRBY', r, from, -1) end
  if to then redis.call('HINCRBY', r, to, 1) end
  local h = redis.call('HMGET', r, 'total', 'succeeded', 'dead', 'cancelled')
  local done = (tonumber(h[2]) or 0) + (tonumber(h[3]) or 0) + (tonumber(h[4]) or 0)
  if done >= (tonumber(h[1]) or 0) then
    if redis.call('SREM', P .. 'runs', run) == 1 then
      if redis.call('HSETNX', r, 'completed_counted', 1) == 1 then count('runs_completed') end
      redis.call('SADD', P .. 'runs_finished', run)
      if retention then redis.call('EXPIRE', r, retention) end
      return true
    end
    if retention then redis.call('EXPIRE', r, retention) end
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
         redis.call('ZCOUNT', P .. 'runs_claimed', '-inf', now) > 0
end

-- Fencing: only the worker holding the current attempt may change a leased scene.
local function owned(id, worker, attempt)
  local s = redis.call('HMGET', skey(id), 'state', 'worker', 'attempts')
  return s[1] == 'leased' and s[2] == worker and s[3] == tostring(attempt)
end

-- The answer a fenced call (ack, fail, release) gave, kept on the scene so that the same worker
-- retrying the same attempt (its first call committed but the reply was lost) gets it again.
local function answered(id, worker, attempt, reply)
  redis.call('HSET', skey(id), 'answered', worker .. '/' .. attempt, 'answer', tostring(reply))
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

-- Prepended to every queue script at build time. The persistent format is documented in
-- docs/queue-protocol.md; never change the meaning of a key or field in place.
-- ARGV[1]: key prefix "sf:{QUEUE}:"; ARGV[2]: now in ms, 0 = the Redis server's clock.
local P = ARGV[1]
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

local function event(id, run, name, attempt, worker, reason)
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

-- A terminal state for the run's bookkeeping: 'succeeded', 'dead' or 'cancelled'. Returns true
-- when every scene of the run has reached one (the caller assembles the run's artifacts).
local function run_finished(run, state, n)
  local r = P .. 'run:' .. run
  redis.call('HINCRBY', r, state, n)
  local h = redis.call('HMGET', r, 'total', 'succeeded', 'dead', 'cancelled')
  local done = (tonumber(h[2]) or 0) + (tonumber(h[3]) or 0) + (tonumber(h[4]) or 0)
  if done >= (tonumber(h[1]) or 0) then
    local removed = redis.call('SREM', P .. 'runs', run)
    if n > 0 and removed == 1 then count('runs_completed') end
    return true
  end
  redis.call('SADD', P .. 'runs', run)
  return false
end

-- Fencing: only the worker holding the current attempt may change a leased scene.
local function owned(id, worker, attempt)
  local s = redis.call('HMGET', skey(id), 'state', 'worker', 'attempts')
  return s[1] == 'leased' and s[2] == worker and s[3] == tostring(attempt)
end

local function unlease(id, worker)
  redis.call('ZREM', P .. 'leased', id)
  redis.call('SREM', P .. 'wl:' .. worker, id)
end

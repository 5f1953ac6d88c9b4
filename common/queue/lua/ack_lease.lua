-- ARGV[3] worker, [4] id, [5] attempt, [6] result (JSON), [7] retention seconds: ack.lua's
-- arguments, for scene id of queue P; [8] lease_ms; [9] the scene the worker renders next when
-- it already holds it ('' : the one leased here, if any); [10...] the worker's queues in its
-- order, to lease from (none: lease nothing).
-- One round trip per scene (issue #14 P3): acks scene id exactly as ack.lua does, then leases
-- the first pending scene of the worker's queues in order exactly as lease.lua does (a paused
-- queue is skipped), and marks the worker's hash busy with the scene it renders next.
-- Returns {ack reply, paused, next due, leased...}: the ack's reply as ack.lua's (0: fenced,
-- nothing changed and nothing leased); paused: one character per queue looked at, '1' when it
-- is paused; next due: as lease.lua's when nothing was leased (the earliest of the queues looked
-- at, -1 none), else -1; then, when a scene was leased, the index (1-based) of its queue in
-- ARGV[10...] and lease.lua's reply.
-- A retry after a lost reply (the same worker, id and attempt) gets the first call's answer and
-- the scene it leased, while that lease is still the worker's: never a second scene.
local worker, id = str_arg(3, 'worker'), str_arg(4, 'scene id')
local attempt = int_arg(5, 'attempt', 1)
local retention = int_arg(7, 'retention seconds', 1)
local lease_ms = int_arg(8, 'lease_ms', 1)
local next_scene = ARGV[9] or ''
local queues = {}
for i = 10, #ARGV do
  if not string.match(ARGV[i], '^[^{}]+$') then bad('queue (argument ' .. i .. ') is not a name') end
  queues[#queues + 1] = ARGV[i]
end
local ack_prefix = P
local tag = worker .. '/' .. attempt

local function mark_busy(scene)
  redis.call('HSET', 'sf:worker:' .. worker, 'busy', scene ~= '' and '1' or '0', 'scene', scene)
end

local reply, acked = ack_scene(worker, id, attempt, ARGV[6], retention)
if not acked then
  if reply == 0 then return {0, '', -1} end
  -- A replay: the scene the first call leased, if it is still this worker's at that attempt.
  local ok, t = pcall(cjson.decode, redis.call('HGET', skey(id), 'then_leased') or '')
  if ok and type(t) == 'table' and t.tag == tag and type(t.q) == 'string' and t.id then
    P = 'sf:{' .. t.q .. '}:'
    local h = redis.call('HMGET', skey(t.id), 'state', 'worker', 'attempts', 'run',
                         'retry_budget', 'failures', 'enqueued_at', 'failed_attempt')
    local doc = scene_doc(t.id)  -- of t.q, as skey
    P = ack_prefix
    local qi = 0
    for i, q in ipairs(queues) do if q == t.q then qi = i end end
    if qi > 0 and h[1] == 'leased' and h[2] == worker and h[3] == tostring(t.a) then
      return {reply, '', -1, qi, t.id, tonumber(h[3]), doc, h[4], h[5], h[6], h[7], h[8] or '0'}
    end
  end
  return {reply, '', -1}
end

local paused, due = '', -1
local leased, from = nil, 0
for i, q in ipairs(queues) do
  P = 'sf:{' .. q .. '}:'
  local r = lease_first(worker, lease_ms)
  paused = paused .. (r == 'paused' and '1' or '0')
  if type(r) == 'table' then
    leased, from = r, i
    break
  end
  if r == nil then
    local d = next_due_in()
    if d >= 0 and (due < 0 or d < due) then due = d end
  end
end
P = ack_prefix

if leased then
  redis.call('HSET', skey(id), 'then_leased',
             cjson.encode({tag = tag, q = queues[from], id = leased[1], a = leased[2]}))
  mark_busy(next_scene ~= '' and next_scene or leased[1])
  local out = {reply, paused, -1, from}
  for _, v in ipairs(leased) do out[#out + 1] = v end
  return out
end
mark_busy(next_scene)
return {reply, paused, due}

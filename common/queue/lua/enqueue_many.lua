-- ARGV[3..]: groups of 5 per scene: id, run, priority, retry_budget, scene document (JSON), the
-- arguments of enqueue.lua, then optionally the actor. Enqueues the scenes in their order with the same keys, fields,
-- scores, counters and events as that many enqueue.lua calls, in one call: every argument is
-- checked before the first write, so a bad one enqueues nothing of the call.
-- Returns one integer per scene: 1, or 0 when the id exists and has not been purged (or came
-- earlier in this call).
-- An optional last argument after the groups: the actor, recorded as the enqueued events' `by`
-- (the exporter's API passes "api:USER"; the CLI none).
local nargs, by = #ARGV, ''
if (nargs - 2) % 5 == 1 then
  by = ARGV[nargs]
  nargs = nargs - 1
end
local n = (nargs - 2) / 5
if n < 1 or n ~= math.floor(n) then
  bad('arguments after the prefix and the time must be groups of 5 (id, run, priority, ' ..
      'retry_budget, document), got ' .. (#ARGV - 2))
end
local in_hash = doc_in_hash()  -- sf:doc_storage, before any write
local reply, new, seen = {}, {}, {}
for k = 0, n - 1 do
  local b = 3 + 5 * k
  local id = str_arg(b, 'scene id')
  str_arg(b + 1, 'run')
  local priority = int_arg(b + 2, 'priority', -999)
  if priority > 999 then bad('priority (argument ' .. (b + 2) .. ') must be within -999..999') end
  int_arg(b + 3, 'retry_budget', 0)
  str_arg(b + 4, 'scene document')
  if seen[id] or redis.call('EXISTS', skey(id)) == 1 then
    reply[k + 1] = 0
  else
    seen[id] = true
    reply[k + 1] = 1
    new[#new + 1] = b
  end
end
if #new == 0 then return reply end
local seq = redis.call('INCRBY', P .. 'seq', #new) - #new
local runs, run_order = {}, {}
local pending, since, docs = {}, {}, {}
local function flush()
  if #pending > 0 then
    if #docs > 0 then redis.call('MSET', unpack(docs)) end
    redis.call('ZADD', P .. 'pending', unpack(pending))
    redis.call('ZADD', P .. 'pending_since', unpack(since))
    pending, since, docs = {}, {}, {}
  end
end
for _, b in ipairs(new) do
  seq = seq + 1
  local id, run = ARGV[b], ARGV[b + 1]
  -- The fields of enqueue.lua, in the same one HSET; the document in its own key (MSET), or
  -- in the hash's `doc` field while sf:doc_storage is "hash" (as enqueue.lua).
  new_scene_hash(id, run, ARGV[b + 2], seq, ARGV[b + 3], in_hash and ARGV[b + 4])
  if not in_hash then
    docs[#docs + 1] = dkey(id)
    docs[#docs + 1] = ARGV[b + 4]
  end
  pending[#pending + 1] = num(pending_score(ARGV[b + 2], seq))
  pending[#pending + 1] = id
  since[#since + 1] = NOW
  since[#since + 1] = id
  if #pending >= 1000 then flush() end
  if not runs[run] then
    runs[run] = 0
    run_order[#run_order + 1] = run
  end
  runs[run] = runs[run] + 1
  event(id, run, 'enqueued', 0, '', '', by)
end
flush()
for _, run in ipairs(run_order) do
  redis.call('HINCRBY', P .. 'run:' .. run, 'total', num(runs[run]))
  redis.call('PERSIST', P .. 'run:' .. run)
  redis.call('SADD', P .. 'runs', run)
end
redis.call('SADD', 'sf:queues', string.sub(P, 5, -3))
count('enqueued', #new)
if #new > 0 then wake() end  -- idle workers block on the wake list
return reply

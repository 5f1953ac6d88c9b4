-- ARGV[3] id, [4] run, [5] priority, [6] retry_budget, [7] scene document (JSON)
-- Returns 1, or 0 when a scene with this id exists and has not been purged.
local id, run = str_arg(3, 'scene id'), str_arg(4, 'run')
local priority = int_arg(5, 'priority', -999)
if priority > 999 then bad('priority (argument 5) must be within -999..999') end
local budget = int_arg(6, 'retry_budget', 0)
str_arg(7, 'scene document')
local in_hash = doc_in_hash()
if redis.call('EXISTS', skey(id)) == 1 then return 0 end
local seq = redis.call('INCR', P .. 'seq')
-- The document in its own key: short values only, so Redis keeps the hash a listpack (issue
-- #14 P6); or, while sf:doc_storage is "hash", in the hash's `doc` field.
if not in_hash then redis.call('SET', dkey(id), ARGV[7]) end
new_scene_hash(id, run, ARGV[5], seq, ARGV[6], in_hash and ARGV[7])
into_pending(id, ARGV[5], seq)
redis.call('HINCRBY', P .. 'run:' .. run, 'total', 1)
redis.call('PERSIST', P .. 'run:' .. run)
redis.call('SADD', P .. 'runs', run)
redis.call('SADD', 'sf:queues', string.sub(P, 5, -3))
count('enqueued')
event(id, run, 'enqueued', 0)
return 1

-- ARGV[3] id, [4] reason (who asked and why: recorded in the scene's history)
-- A succeeded scene goes back to pending to be rendered again, on purpose. It gets a new
-- attempt number (so a new prompt_id), its earlier attempts are never adopted (failed_attempt
-- is set to the last one), its retry budget is fresh, and it queues behind the scenes already
-- pending at its priority. Its hash no longer expires; the previous result stays until the new
-- one replaces it, and the run is open again until the scene finishes.
-- Returns 1, or the state it is in when that is not 'succeeded' ('' when unknown or expired).
local id = str_arg(3, 'scene id')
local h = redis.call('HMGET', skey(id), 'state', 'run', 'priority', 'attempts')
if h[1] ~= 'succeeded' then return h[1] or '' end
if not tonumber(h[3]) then bad('scene ' .. id .. ' has no priority: nothing changed') end
local seq = redis.call('INCR', P .. 'seq')
scene_persist(id)  -- its hash and its doc key
redis.call('HSET', skey(id), 'seq', seq, 'failures', 0, 'reclaims', 0, 'failed_attempt', h[4])
redis.call('HDEL', skey(id), 'reason', 'finished_at', 'cancel_requested')
to_pending(id, h[3], seq)
run_moved(h[2], 'succeeded', nil)
count('rerun')
event(id, h[2], 'rerun', h[4], '', ARGV[4])
return 1

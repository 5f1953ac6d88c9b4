-- ARGV[3] id, [4] retention seconds of the cancelled scene's record and of a run it finishes
-- (default 7 days), [5] actor (who asked: recorded as the event's `by`; optional)
-- Pending, delayed or dead: cancelled now. Leased: the cancel is requested and its worker
-- stops it (heartbeat answers 2). Returns the state it was in ('' when unknown); a finished
-- scene is left as it is.
local id = str_arg(3, 'scene id')
local retention = 7 * 86400
if ARGV[4] and ARGV[4] ~= '' then retention = int_arg(4, 'retention seconds', 1) end
local by = ARGV[5] or ''
local h = redis.call('HMGET', skey(id), 'state', 'run', 'attempts')
local state = h[1]
if not state then return '' end
if state == 'pending' or state == 'delayed' or state == 'dead' then
  redis.call('ZREM', P .. state, id)
  redis.call('ZREM', P .. 'pending_since', id)
  redis.call('HSET', skey(id), 'state', 'cancelled', 'finished_at', now)
  count('cancelled')
  -- A dead scene was already finished for its run: it only changes which count holds it.
  run_moved(h[2], state == 'dead' and 'dead' or nil, 'cancelled', retention)
  event(id, h[2], 'cancelled', h[3], '', 'cancelled while ' .. state, by)
  scene_expire(id, retention)
elseif state == 'leased' then
  redis.call('HSET', skey(id), 'cancel_requested', '1')
  event(id, h[2], 'cancel_requested', h[3], '', '', by)
end
return state

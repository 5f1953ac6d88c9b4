-- ARGV[3] id
-- Pending, delayed or dead: cancelled now. Leased: the cancel is requested and its worker
-- stops it (heartbeat answers 2). Returns the state it was in ('' when unknown); a finished
-- scene is left as it is.
local id = ARGV[3]
local h = redis.call('HMGET', skey(id), 'state', 'run', 'attempts')
local state = h[1]
if not state then return '' end
if state == 'pending' or state == 'delayed' or state == 'dead' then
  redis.call('ZREM', P .. state, id)
  redis.call('ZREM', P .. 'pending_since', id)
  redis.call('HSET', skey(id), 'state', 'cancelled', 'finished_at', now)
  count('cancelled')
  if state == 'dead' then
    run_finished(h[2], 'dead', -1)
  end
  run_finished(h[2], 'cancelled', 1)
  event(id, h[2], 'cancelled', h[3], '', 'cancelled while ' .. state)
elseif state == 'leased' then
  redis.call('HSET', skey(id), 'cancel_requested', '1')
  event(id, h[2], 'cancel_requested', h[3], '', '')
end
return state

-- ARGV[3] limit, [4] max_reclaims
-- Scenes whose lease expired (their worker died or lost Redis) go back to pending; one whose
-- lease expired max_reclaims times is dead-lettered, and one whose cancel was requested is
-- cancelled. Safe to run from every worker at once: each scene moves once.
-- Returns the number of scenes moved.
local expired = redis.call('ZRANGEBYSCORE', P .. 'leased', '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(expired) do
  local h = redis.call('HMGET', skey(id), 'worker', 'attempts', 'run', 'priority', 'seq',
                       'cancel_requested')
  unlease(id, h[1] or '')
  local reclaims = redis.call('HINCRBY', skey(id), 'reclaims', 1)
  count('reclaimed')
  if h[6] == '1' then
    redis.call('HSET', skey(id), 'state', 'cancelled', 'finished_at', now,
               'reason', 'cancelled while its worker was lost')
    count('cancelled')
    run_finished(h[3], 'cancelled', 1)
    event(id, h[3], 'cancelled', h[2], h[1], 'lease expired')
  elseif reclaims >= tonumber(ARGV[4]) then
    local reason = 'lease expired ' .. reclaims .. ' times (worker lost each time)'
    redis.call('HSET', skey(id), 'state', 'dead', 'reason', reason, 'finished_at', now)
    redis.call('ZADD', P .. 'dead', now, id)
    count('dead_lettered')
    run_finished(h[3], 'dead', 1)
    event(id, h[3], 'dead_lettered', h[2], h[1], reason)
  else
    to_pending(id, h[4], h[5])
    event(id, h[3], 'reclaimed', h[2], h[1], 'lease expired')
  end
end
return #expired

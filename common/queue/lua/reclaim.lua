-- ARGV[3] limit, [4] max_reclaims, [5] retention seconds (cancelled scenes' records, finished
-- runs' records, and workers without a heartbeat that long leave sf:workers; default 7 days)
-- Scenes whose lease expired (their worker died or lost Redis) go back to pending; one whose
-- lease expired max_reclaims times is dead-lettered, and one whose cancel was requested is
-- cancelled. Safe to run from every worker at once: each scene moves once.
-- Returns the number of scenes moved.
local limit = int_arg(3, 'limit', 1)
local max_reclaims = int_arg(4, 'max_reclaims', 1)
local retention = 7 * 86400
if ARGV[5] and ARGV[5] ~= '' then retention = int_arg(5, 'retention seconds', 1) end
redis.call('ZREMRANGEBYSCORE', 'sf:workers', '-inf', '(' .. (now - retention * 1000))
local expired = redis.call('ZRANGEBYSCORE', P .. 'leased', '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local h = redis.call('HMGET', skey(id), 'worker', 'attempts', 'run', 'priority', 'seq',
                       'cancel_requested', 'reclaims')
  local reclaims = (tonumber(h[7]) or 0) + 1
  unlease(id, h[1] or '')
  redis.call('HSET', skey(id), 'reclaims', reclaims)
  count('reclaimed')
  if h[6] == '1' then
    redis.call('HSET', skey(id), 'state', 'cancelled', 'finished_at', now,
               'reason', 'cancelled while its worker was lost')
    count('cancelled')
    run_moved(h[3], nil, 'cancelled', retention)
    event(id, h[3], 'cancelled', h[2], h[1], 'lease expired')
    scene_expire(id, retention)
  elseif reclaims >= max_reclaims or not tonumber(h[4]) or not tonumber(h[5]) then
    local reason = 'lease expired ' .. reclaims .. ' times (worker lost each time)'
    if reclaims < max_reclaims then reason = 'lease expired and its record has no priority or seq' end
    redis.call('HSET', skey(id), 'state', 'dead', 'reason', reason, 'finished_at', now)
    redis.call('ZADD', P .. 'dead', now, id)
    count('dead_lettered')
    run_moved(h[3], nil, 'dead', retention)
    event(id, h[3], 'dead_lettered', h[2], h[1], reason)
  else
    to_pending(id, h[4], h[5])
    event(id, h[3], 'reclaimed', h[2], h[1], 'lease expired')
  end
end
-- Re-arms the wake list: scenes pending with no token (the worker that took it died before it
-- leased) wake an idle worker within a heartbeat period, without idle workers polling.
if redis.call('EXISTS', P .. 'pending') == 1 and redis.call('EXISTS', P .. 'paused') == 0 then
  wake()
end
return #expired

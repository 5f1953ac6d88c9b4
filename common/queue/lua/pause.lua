-- ARGV[3] '1' pause, '0' resume; [4] actor (who asked: the event's `by`)
-- A paused queue (its `paused` hash: by, at) leases nothing (lease.lua answers 'paused');
-- delayed promotion, heartbeats, acks, fails and reclaims go on. The change is an event of the
-- queue's stream with an empty scene: queue_paused or queue_resumed.
-- Returns 1 when the state changed, 0 when the queue already was so.
local pause = ARGV[3]
if pause ~= '1' and pause ~= '0' then bad('pause (argument 3) must be 1 or 0') end
local by = ARGV[4] or ''
local key = P .. 'paused'
local was = redis.call('EXISTS', key) == 1
if pause == '1' then
  if was then return 0 end
  redis.call('HSET', key, 'by', by, 'at', now)
  event('', '', 'queue_paused', 0, '', '', by)
else
  if not was then return 0 end
  redis.call('DEL', key)
  event('', '', 'queue_resumed', 0, '', '', by)
  wake()  -- idle workers lease what waited
end
return 1

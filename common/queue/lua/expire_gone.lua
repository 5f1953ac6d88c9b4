-- ARGV[3..] pairs of (id, worker): leases of workers that are gone (no heartbeat). Each lease
-- still held by that worker is expired now, so the next reclaim returns the scene to pending
-- (with reclaim's bookkeeping: max reclaims, requested cancels). Returns how many expired.
if #ARGV % 2 ~= 0 then bad('scene ids and workers must come in pairs') end
local n = 0
for i = 3, #ARGV - 1, 2 do
  local id, worker = ARGV[i], ARGV[i + 1]
  local s = redis.call('HMGET', skey(id), 'state', 'worker')
  if s[1] == 'leased' and s[2] == worker then
    redis.call('ZADD', P .. 'leased', 'XX', now - 1, id)
    n = n + 1
  end
end
return n

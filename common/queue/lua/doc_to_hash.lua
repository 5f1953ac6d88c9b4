-- ARGV[3..] scene ids (at most a batch: `scenefarm doc-storage hash` calls it per SCAN batch)
-- Moves each scene's document from its doc key back into its hash's `doc` field, the format
-- versions before the doc key read, and deletes the doc key; the hash keeps its TTL and every
-- other field. A doc key whose hash is gone (an orphan) is deleted. An id without a doc key
-- (already moved, expired) is left alone. Returns {moved, orphans deleted}.
if #ARGV < 3 then bad('scene ids (arguments 3...) must be given') end
for i = 3, #ARGV do str_arg(i, 'scene id') end
local moved, orphans = 0, 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local d = redis.call('GET', dkey(id))
  if d then
    if redis.call('EXISTS', skey(id)) == 1 then
      redis.call('HSET', skey(id), 'doc', d)
      moved = moved + 1
    else
      orphans = orphans + 1
    end
    redis.call('DEL', dkey(id))
  end
end
return {moved, orphans}

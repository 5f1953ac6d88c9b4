-- ARGV[3..] scene ids (at most a batch: `scenefarm doc-storage hash` calls it per SCAN batch)
-- Moves each scene's document from its doc key back into its hash's `doc` field, the format
-- versions before the doc key read, and deletes the doc key; the hash keeps its TTL and every
-- other field. Deleted without a move: a doc key whose hash is gone (an orphan), and one whose
-- hash already holds a `doc` field (a stale key an earlier version left behind: the hash's
-- document is the newer, since no enqueue writes a doc key for an existing hash). Left alone: an
-- id without a doc key (already moved, expired) and a scene key that is not a hash (a damaged
-- record, kept for an operator). Everything is read before the first write.
-- Returns {moved, orphans and stale keys deleted}.
if #ARGV < 3 then bad('scene ids (arguments 3...) must be given') end
for i = 3, #ARGV do str_arg(i, 'scene id') end
local todo = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local d = redis.call('GET', dkey(id))
  if d then
    local t = redis.call('TYPE', skey(id))['ok']
    if t == 'none' then
      todo[#todo + 1] = {id, false}
    elseif t == 'hash' then
      if redis.call('HEXISTS', skey(id), 'doc') == 1 then
        todo[#todo + 1] = {id, false}
      else
        todo[#todo + 1] = {id, d}
      end
    end
  end
end
local moved, orphans = 0, 0
for _, m in ipairs(todo) do
  if m[2] then
    redis.call('HSET', skey(m[1]), 'doc', m[2])
    moved = moved + 1
  else
    orphans = orphans + 1
  end
  redis.call('DEL', dkey(m[1]))
end
return {moved, orphans}

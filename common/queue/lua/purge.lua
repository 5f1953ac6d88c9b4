-- ARGV[3] cutoff (ms; dead-lettered at or before it), [4] limit, [5] actor (the events' `by`;
-- optional)
-- Deletes dead-lettered scenes for good: their record, their place in the dead set. The run's
-- counts keep them (they ended dead). Returns the ids deleted.
local cutoff, limit = int_arg(3, 'cutoff'), int_arg(4, 'limit', 1)
local by = ARGV[5] or ''
local ids = redis.call('ZRANGEBYSCORE', P .. 'dead', '-inf', cutoff, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', skey(id), 'run', 'attempts')
  redis.call('ZREM', P .. 'dead', id)
  scene_del(id)  -- its hash and its doc key
  count('purged')
  event(id, h[1] or '', 'purged', h[2] or '0', '', 'dead-letter purged', by)
end
return ids

-- archive: remove from a tenant's log and projection the jobs an archival copied out,
-- each only if it is still as copied (the same version and the same history: still
-- finished, no event since); a job that moved is left as it is.
-- KEYS[1]: the tenant's log, then the tenant's other keys it writes.
-- ARGV[1]: tag, then per job: id, version, history (as the 'h' hash holds it),
-- idempotency key ('' if none), parents count, parents.
-- Returns the ids removed.
local T = ARGV[1]
local removed = {}
local i = 2
while i <= #ARGV do
  local id, version, history, key = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local first_parent = i + 5
  i = first_parent + tonumber(ARGV[i + 4])
  if redis.call('HGET', T .. ':v', id) == version and redis.call('HGET', T .. ':h', id) == history then
    for tpos in string.gmatch(history, '(%d+),') do
      redis.call('XDEL', KEYS[1], tpos .. '-0')
    end
    redis.call('HDEL', T .. ':jobs', id)
    redis.call('HDEL', T .. ':v', id)
    redis.call('HDEL', T .. ':h', id)
    redis.call('HDEL', T .. ':e', id)
    if key ~= '' and redis.call('HGET', T .. ':k', key) == id then
      redis.call('HDEL', T .. ':k', key)
      redis.call('ZREM', T .. ':cron', key)
    end
    for p = first_parent, i - 1 do
      redis.call('LREM', T .. ':c:' .. ARGV[p], 0, id)
    end
    removed[#removed + 1] = id
  end
end
return removed

-- flush: append a batch's events to the tenant's log and apply its projection changes,
-- all or nothing: first every guard is checked (each job the batch wrote still has the
-- version and the number of dependents the batch read, each new job and idempotency key
-- is still free, each control stream event is its stream's next version); on any
-- failure nothing is written and the conflict is returned.
-- KEYS[1]: the tenant's log, then every other key it touches (a cluster runs it only where
-- they all are, see workingset.declared_keys). ARGV[1]: tag; ARGV[2]: one msgpack array (one argument
-- instead of hundreds; event data and job states, which this Lua's msgpack cannot
-- read, follow as ARGV[3...] and the array holds their indexes) of counted lists:
--   guards (job, version or 0 for a new job, dependents count or -1),
--   keys (key, job, in the cron namespace: 1/0),
--   events (job, version, type, data),
--   jobs (job, version, state, then the old and the new index entry, each
--         (kind, queue, priority, score, member): kind 'r' ready, 'l' leased, '-' none),
--   edges (parent, child),
--   then a channel ('' for none) and a message to publish there once written (waking
--   idle workers on every host as soon as the jobs this batch made ready are stored).
-- Returns {'ok', first tenant position, last, commit time} or {'conflict', what, which}.
local T = ARGV[1]
local A = cmsgpack.unpack(ARGV[2])
local i = 1
local function nxt() local v = A[i]; i = i + 1; return v end
local versions = T .. ':v'

local ng = nxt()
for _ = 1, ng do
  local id, version, children = nxt(), nxt(), nxt()
  local stored = redis.call('HGET', versions, id)
  if version == 0 then
    if stored then return {'conflict', 'job exists', id} end
  elseif tonumber(stored) ~= version then
    return {'conflict', 'version', id}
  end
  if children >= 0 and redis.call('LLEN', T .. ':c:' .. id) ~= children then
    return {'conflict', 'dependents', id}
  end
end
local keys_at = i
local nk = nxt()
for _ = 1, nk do
  local key = nxt()
  i = i + 2
  if redis.call('HEXISTS', T .. ':k', key) == 1 then return {'conflict', 'key', key} end
end
-- A stream with no job row (ids from '~': the tenant's control stream) is guarded by
-- its history: each of its events must be the next version.
local streams = {}
for _ = 1, nxt() do
  local id, version = nxt(), nxt()
  i = i + 2
  if string.sub(id, 1, 1) == '~' then
    local count = streams[id]
    if count == nil then
      local _, stored = string.gsub(redis.call('HGET', T .. ':h', id) or '', ',', '')
      count = stored
    end
    if version ~= count + 1 then return {'conflict', 'version', id} end
    streams[id] = version
  end
end

-- Every guard holds: write.
i = keys_at + 1
for _ = 1, nk do
  local key, id, cron = nxt(), nxt(), nxt()
  redis.call('HSET', T .. ':k', key, id)
  if cron == 1 then redis.call('ZADD', T .. ':cron', 0, key) end
end

local ne = nxt()
local first = 0
local tpos = 0
local committed = ''
if ne > 0 then
  local counter = T .. ':n'
  tpos = redis.call('INCRBY', counter, ne) - ne
  -- The commit time orders tenants' events when the sequencer numbers them together.
  local t = redis.call('TIME')
  committed = t[1] .. string.format('%06d', tonumber(t[2]))
  first = tpos + 1
  for _ = 1, ne do
    local id, version, kind, data = nxt(), nxt(), nxt(), ARGV[nxt()]
    tpos = tpos + 1
    redis.call('XADD', KEYS[1], tpos .. '-0', 'j', id, 'v', version, 't', kind, 'd', data,
      'c', committed)
    local history = redis.call('HGET', T .. ':h', id)
    redis.call('HSET', T .. ':h', id, (history or '') .. tpos .. ',')
    if kind == 'enqueued' then redis.call('HSET', T .. ':e', id, tpos) end
  end
end

local function unindex(id, kind, queue, prio, member)
  if kind == 'r' then
    local ready = T .. ':r:' .. queue .. ':' .. prio
    redis.call('ZREM', ready, member)
    if redis.call('ZCARD', ready) == 0 then redis.call('ZREM', T .. ':p:' .. queue, prio) end
  elseif kind == 'l' then
    redis.call('ZREM', T .. ':l', id)
  end
end
local function index(id, kind, queue, prio, score, member)
  if kind == 'r' then
    redis.call('ZADD', T .. ':r:' .. queue .. ':' .. prio, score, member)
    redis.call('ZADD', T .. ':p:' .. queue, -tonumber(prio), prio)
  elseif kind == 'l' then
    redis.call('ZADD', T .. ':l', score, id)
  end
end

local nj = nxt()
for _ = 1, nj do
  local id, version, state = nxt(), nxt(), ARGV[nxt()]
  local ok, oq, op, _, om = nxt(), nxt(), nxt(), nxt(), nxt()
  local nk2, nq, np, ns, nm = nxt(), nxt(), nxt(), nxt(), nxt()
  redis.call('HSET', T .. ':jobs', id, state)
  redis.call('HSET', versions, id, version)
  unindex(id, ok, oq, op, om)
  index(id, nk2, nq, np, ns, nm)
end

for _ = 1, nxt() do
  local parent, child = nxt(), nxt()
  redis.call('RPUSH', T .. ':c:' .. parent, child)
end

local channel = nxt()
if channel ~= '' then redis.call('PUBLISH', channel, nxt()) end

return {'ok', first, tpos, committed}

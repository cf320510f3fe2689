-- read: everything one batch of a tenant's units of work declared it reads, in one call.
-- KEYS[1]: the tenant's log (routes the call to the tenant's shard), then the other keys
-- known before it runs (see workingset.read_keys).
-- ARGV: tag, now_us ('' = the server's TIME), new_jobs, then counted lists:
--   loads (job), keys (key), prefixes (prefix, end), ready (queue, wanted),
--   expired limit, roots (job) whose dependents closure to read.
-- Returns {now_us, last_fifo, loads, keys, latest, ready, expired, closure}; a job is
-- (job, state, dependents count), a closure row (parent, child, state, dependents).
local T = ARGV[1]
local i = 2
local function nxt() local v = ARGV[i]; i = i + 1; return v end

local now = nxt()
if now == '' then
  local t = redis.call('TIME')
  now = t[1] .. string.format('%06d', tonumber(t[2]))
end
local new_jobs = tonumber(nxt())
local fifo = 0
if new_jobs > 0 then fifo = redis.call('INCRBY', T .. ':fifo', new_jobs) end

local jobs_key = T .. ':jobs'
local function job(out, id)
  local state = redis.call('HGET', jobs_key, id)
  if state then
    out[#out + 1] = id
    out[#out + 1] = state
    out[#out + 1] = redis.call('LLEN', T .. ':c:' .. id)
    return true
  end
  return false
end

local loads = {}
for _ = 1, tonumber(nxt()) do job(loads, nxt()) end

local keys = {}
for _ = 1, tonumber(nxt()) do
  local key = nxt()
  local id = redis.call('HGET', T .. ':k', key)
  if id then keys[#keys + 1] = key; keys[#keys + 1] = id end
end

local latest = {}
for _ = 1, tonumber(nxt()) do
  local prefix, stop = nxt(), nxt()
  local found = redis.call('ZRANGE', T .. ':cron', '(' .. stop, '[' .. prefix, 'BYLEX', 'REV', 'LIMIT', 0, 1)
  if found[1] then
    latest[#latest + 1] = prefix
    latest[#latest + 1] = found[1]
    latest[#latest + 1] = redis.call('HGET', T .. ':k', found[1])
  end
end

local ready = {}
for _ = 1, tonumber(nxt()) do
  local queue, wanted = nxt(), tonumber(nxt())
  local got = 0
  for _, prio in ipairs(redis.call('ZRANGE', T .. ':p:' .. queue, 0, -1)) do
    if got >= wanted then break end
    local members = redis.call('ZRANGE', T .. ':r:' .. queue .. ':' .. prio, '-inf', now,
      'BYSCORE', 'LIMIT', 0, wanted - got)
    for _, member in ipairs(members) do
      if job(ready, string.sub(member, 18)) then got = got + 1 end
    end
  end
end

local expired = {}
local roots = {}
local limit = tonumber(nxt())
if limit > 0 then
  for _, id in ipairs(redis.call('ZRANGE', T .. ':l', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
    if job(expired, id) then roots[#roots + 1] = id end
  end
end
for _ = 1, tonumber(nxt()) do roots[#roots + 1] = nxt() end

-- The dependents closure of the roots, breadth first, each job's children oldest first.
local closure = {}
local seen = {}
local k = 1
while k <= #roots do
  local parent = roots[k]
  k = k + 1
  if not seen[parent] then
    seen[parent] = true
    for _, child in ipairs(redis.call('LRANGE', T .. ':c:' .. parent, 0, -1)) do
      local state = redis.call('HGET', jobs_key, child)
      if state then
        closure[#closure + 1] = parent
        closure[#closure + 1] = child
        closure[#closure + 1] = state
        closure[#closure + 1] = redis.call('LLEN', T .. ':c:' .. child)
        roots[#roots + 1] = child
      end
    end
  end
end

return {now, fifo, loads, keys, latest, ready, expired, closure}

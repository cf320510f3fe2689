-- seal: record one sequencer step on the log's global keys, if no other step moved the
-- log's last position since this one read it.
-- KEYS[1]: the global last position, then the other keys it writes. ARGV: global tag, expected last position, new last
-- position, then runs (tenant key part, tenant, first tenant position, first position,
-- count, hashes) and chain heads (tenant, head).
-- A run gives `count` consecutive events of one tenant consecutive positions.
local G = ARGV[1]
local stored = redis.call('GET', KEYS[1]) or '0'
if stored ~= ARGV[2] then return {'conflict', stored} end
local i = 4
local function nxt() local v = ARGV[i]; i = i + 1; return v end
for _ = 1, tonumber(nxt()) do
  local part, tenant, tpos, pos, count, hashes = nxt(), nxt(), nxt(), nxt(), nxt(), nxt()
  redis.call('XADD', G .. ':log', pos .. '-0', 't', tenant, 'p', tpos, 'n', count, 'h', hashes)
  redis.call('ZADD', G .. ':runs:' .. part, tpos, tpos .. ':' .. pos .. ':' .. count)
end
for _ = 1, tonumber(nxt()) do
  local tenant, head = nxt(), nxt()
  redis.call('HSET', G .. ':heads', tenant, head)
end
redis.call('SET', KEYS[1], ARGV[3])
return {'ok', ARGV[3]}

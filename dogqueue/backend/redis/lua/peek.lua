-- peek: whether a tenant has a job due in these queues ('ready': 1 or 0), or the
-- earliest run_at (microseconds) of its ENQUEUED jobs there ('next': nil if none).
-- KEYS[1]: the tenant's log. ARGV: tag, mode, now_us, queues...
local T = ARGV[1]
local best = nil
local best_text = nil
for q = 4, #ARGV do
  for _, prio in ipairs(redis.call('ZRANGE', T .. ':p:' .. ARGV[q], 0, -1)) do
    local first = redis.call('ZRANGE', T .. ':r:' .. ARGV[q] .. ':' .. prio, 0, 0, 'WITHSCORES')
    if first[2] then
      local score = tonumber(first[2])
      if ARGV[2] == 'ready' and score <= tonumber(ARGV[3]) then return 1 end
      if best == nil or score < best then best = score; best_text = first[2] end
    end
  end
end
if ARGV[2] == 'ready' then return 0 end
return best_text

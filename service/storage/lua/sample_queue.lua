-- KEYS: stream, backlog counter.   ARGV: group
-- Returns {backlog, id of the oldest pending entry or '', id of the oldest undelivered or ''}:
-- the oldest job not yet final is one of the two. Errors (no stream or group yet) read as none.
local backlog = tonumber(redis.call('GET', KEYS[2]) or '0')
local oldest_pending, oldest_new = '', ''
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok and pending[2] then oldest_pending = pending[2] end
local found, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if found then
  for _, group in ipairs(groups) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then
      local next_entry = redis.call('XRANGE', KEYS[1], '(' .. fields['last-delivered-id'], '+',
                                    'COUNT', 1)
      if next_entry[1] then oldest_new = next_entry[1][1] end
    end
  end
end
return {backlog, oldest_pending, oldest_new}

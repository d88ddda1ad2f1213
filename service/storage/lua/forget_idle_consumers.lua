-- KEYS: stream.   ARGV: group, idle threshold ms, the caller's consumer name
-- Deletes consumers with nothing pending and idle past the threshold, atomically, so a
-- consumer that read entries a moment ago cannot lose them from the pending list. A live
-- consumer that is deleted is made again by its next read. Returns how many were deleted.
redis.replicate_commands()
local deleted = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #consumer, 2 do
    fields[consumer[i]] = consumer[i + 1]
  end
  if fields['pending'] == 0 and fields['idle'] > tonumber(ARGV[2])
     and fields['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    deleted = deleted + 1
  end
end
return deleted

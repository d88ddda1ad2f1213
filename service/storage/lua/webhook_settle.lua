-- KEYS: the shard's webhook stream, its retry set, its webhook dead letters
-- ARGV: group, entry id, what became of the delivery ('done', 'retry' or 'dead'), the retry's
--       due time (ms), the delivery's fields as a JSON array [name, value, ...] (for a retry:
--       with its attempts counted; for a dead letter: with why), dead-letter MAXLEN
-- Returns 1, or 0 when the entry was no longer pending (another process settled it).
-- One step: the entry leaves the stream, and a retry waits in the set until it is due, or the
-- delivery becomes a dead letter.
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
elseif ARGV[3] == 'dead' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', unpack(cjson.decode(ARGV[5])))
end
return 1

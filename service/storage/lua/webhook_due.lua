-- KEYS: the shard's webhook stream, its retry set
-- ARGV: now (ms), most retries to move, stream MAXLEN
-- Moves the retries that are due back into the stream, each once (moved and removed in one
-- step). Returns {how many moved, the due time (ms) of the next one, or ''}.
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, packed in ipairs(due) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(cjson.decode(packed)))
  redis.call('ZREM', KEYS[2], packed)
end
local next = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {#due, next[2] or ''}

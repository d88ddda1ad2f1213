-- KEYS: the job hashes of one batch.   ARGV: now
-- Per job, {attempts, created_at}: attempts counts this delivery too; -1 if the job is already
-- final (another consumer finished it), -2 if its hash is gone (expired).
local out = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'status', 'created_at')
  local status = state[1]
  if not status then
    out[i] = {-2, ''}
  elseif status == 'succeeded' or status == 'failed' or status == 'expired' then
    out[i] = {-1, state[2]}
  else
    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'status', 'running', 'started_at', ARGV[1])
    out[i] = {attempts, state[2]}
  end
end
return out

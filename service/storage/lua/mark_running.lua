-- KEYS: the shard's webhook stream, then the job hashes of one batch (one shard's: one slot).
-- ARGV: now, the publish command (PUBLISH or SPUBLISH), the shard's done channel, webhook
--       stream MAXLEN, then the batch's job ids (in the order of their hashes).
-- Per job, {attempts, created_at}: attempts counts this delivery too; -1 if the job is already
-- final (another consumer finished it), -2 if its hash is gone (expired), -3 if it was
-- canceled (the consumer acknowledges its entry, and nothing runs).
-- A job's first start queues its 'start' webhook when its filter has it; a job an event stream
-- watches (its `watch` field) is announced on the done channel, so that its stream says
-- 'running'.
local out = {}
local watched = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local state = redis.call('HMGET', key, 'status', 'created_at', 'webhook_events', 'watch')
  local status = state[1]
  if not status then
    out[i - 1] = {-2, ''}
  elseif status == 'canceled' then
    out[i - 1] = {-3, state[2]}
  elseif status == 'succeeded' or status == 'failed' or status == 'expired' then
    out[i - 1] = {-1, state[2]}
  else
    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'status', 'running', 'started_at', ARGV[1])
    out[i - 1] = {attempts, state[2]}
    local job_id = ARGV[3 + i]
    if attempts == 1 then
      queue_webhook(KEYS[1], ARGV[4], key, job_id, 'start', state[3], 'status', 'running')
    end
    if state[4] then
      watched[#watched + 1] = job_id
    end
  end
end
if #watched > 0 then
  redis.call(ARGV[2], ARGV[3], table.concat(watched, ','))
end
return out

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
    if state[3] and attempts == 1 and string.find(state[3], 'start', 1, true) then
      local job = redis.call('HMGET', key, 'webhook', 'input')
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
                 'id', 'msg_' .. job_id .. '_start', 'job', job_id, 'event', 'start',
                 'url', job[1], 'attempt', '0', 'status', 'running', 'input', job[2],
                 'created_at', state[2])
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

-- Prepended by scripts.py to the scripts that queue webhook deliveries (mark_running, finish_batch,
-- cancel): the one place a delivery's entry is written.
-- queue_webhook(stream, maxlen, key, job_id, event, events, ...) queues `event` ('start' or
-- 'completed') of the job whose hash is `key` when its filter `events` (its webhook_events
-- field, false when it has none) names it: an entry of the shard's webhook stream with the
-- delivery's id (the same through every retry: its `webhook-id`), the URL, the first attempt,
-- and the job's fields as they stand, then `...` (its status, and what its outcome adds).
local function queue_webhook(stream, maxlen, key, job_id, event, events, ...)
  if not events or not string.find(events, event, 1, true) then
    return
  end
  local job = redis.call('HMGET', key, 'webhook', 'input', 'created_at')
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
             'id', 'msg_' .. job_id .. '_' .. event, 'job', job_id, 'event', event,
             'url', job[1], 'attempt', '0', 'input', job[2], 'created_at', job[3], ...)
end


-- KEYS: job hash, its shard's stream, backlog, completed, webhook stream
-- ARGV: group, now, TTL s, owner ('' with auth off), the publish command, the done channel,
--       job id, webhook stream MAXLEN
-- Returns {'missing'} (no such job for this owner) | {'final', status, created_at} (left as
--       it was) | {'canceled', status before, created_at}: 'canceled' before means it already
--       was.
-- A queued job whose entry no consumer has read yet leaves the stream (XDEL): nothing will run
-- it, and it leaves the backlog here. An entry a consumer holds (a running job, or one read
-- but not yet marked) stays: that consumer's finish acknowledges it and drops the result.
redis.replicate_commands()
local state = redis.call('HMGET', KEYS[1], 'status', 'owner', 'entry', 'webhook_events',
                         'created_at')
local status = state[1]
if not status or (state[2] or '') ~= ARGV[4] then
  return {'missing'}
end
if status == 'canceled' then
  return {'canceled', status, state[5]}
end
if status ~= 'queued' and status ~= 'running' then
  return {'final', status, state[5]}
end
if status == 'queued' and state[3] then
  -- No group yet (no consumer ever started) is an error reply: then nobody read the entry.
  local pending = redis.pcall('XPENDING', KEYS[2], ARGV[1], state[3], state[3], 1)
  if (pending.err or #pending == 0) and redis.call('XDEL', KEYS[2], state[3]) == 1 then
    redis.call('DECR', KEYS[3])
    redis.call('INCR', KEYS[4])
  end
end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
queue_webhook(KEYS[5], ARGV[8], KEYS[1], ARGV[7], 'completed', state[4],
              'status', 'canceled', 'finished_at', ARGV[2])
redis.call(ARGV[5], ARGV[6], ARGV[7])
return {'canceled', status, state[5]}

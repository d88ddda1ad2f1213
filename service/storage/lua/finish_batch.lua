-- KEYS: stream, backlog, completed, dead-letter stream, webhook stream, then the job hashes of
--       the batch.
-- ARGV: group, TTL s, now, done channel, stream MAXLEN, dead-letter MAXLEN, the publish
--       command (PUBLISH, or SPUBLISH on a Cluster: the channel is in the stream's slot),
--       webhook stream MAXLEN, then per job:
--       entry id, job id, outcome (succeeded|failed|expired|retry|dead|gone|canceled), result
--       or error.
-- The XACK reply decides: only the delivery that acknowledges an entry first writes its
-- outcome, so a job completed twice (a slow consumer and the one that reclaimed it) has one
-- result. 'retry' re-queues the job as a new entry, marked 'retry' (a consumer runs a first
-- delivery while marking it running, a retried one only after); 'dead' is 'failed' plus a
-- dead letter. A job canceled meanwhile keeps its state: its result is dropped.
-- A job made final whose webhook filter has 'completed' gets its delivery queued here, in the
-- same call, with what the job holds now.
-- Returns {the ids of the jobs this call made final, the ids of canceled jobs it acknowledged}.
redis.replicate_commands()
local done = {}
local canceled = {}
for i = 6, #KEYS do
  local key = KEYS[i]
  local base = 8 + (i - 6) * 4
  local entry, job_id = ARGV[base + 1], ARGV[base + 2]
  local outcome, value = ARGV[base + 3], ARGV[base + 4]
  if redis.call('XACK', KEYS[1], ARGV[1], entry) == 1 then
    local state = redis.call('HMGET', key, 'status', 'webhook_events')
    if state[1] == 'canceled' then
      canceled[#canceled + 1] = job_id
    elseif outcome == 'retry' then
      if state[1] then
        local job = redis.call('HMGET', key, 'input', 'deadline_at')
        local retry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'id', job_id,
                                 'input', job[1], 'deadline_at', job[2] or '', 'retry', '1')
        redis.call('HSET', key, 'status', 'queued', 'error', value, 'entry', retry)
      else
        done[#done + 1] = job_id
      end
    else
      if state[1] and outcome ~= 'gone' then
        local status = outcome
        local field = 'error'
        if outcome == 'succeeded' then field = 'result' end
        if outcome == 'dead' then
          status = 'failed'
          redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'id', job_id,
                     'input', redis.call('HGET', key, 'input'), 'error', value,
                     'attempts', redis.call('HGET', key, 'attempts'))
        end
        redis.call('HSET', key, 'status', status, field, value, 'finished_at', ARGV[3])
        redis.call('EXPIRE', key, ARGV[2])
        queue_webhook(KEYS[5], ARGV[8], key, job_id, 'completed', state[2],
                      'status', status, field, value, 'finished_at', ARGV[3])
      end
      done[#done + 1] = job_id
    end
  end
end
local acknowledged = #done + #canceled
if acknowledged > 0 then
  redis.call('DECRBY', KEYS[2], acknowledged)
  redis.call('INCRBY', KEYS[3], acknowledged)
  if #done > 0 then
    redis.call(ARGV[7], ARGV[4], table.concat(done, ','))
  end
end
return {done, canceled}

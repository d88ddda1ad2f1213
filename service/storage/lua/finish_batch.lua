-- KEYS: stream, backlog, completed, dead-letter stream, then the job hashes of the batch.
-- ARGV: group, TTL s, now, done channel, stream MAXLEN, dead-letter MAXLEN, the publish
--       command (PUBLISH, or SPUBLISH on a Cluster: the channel is in the stream's slot),
--       then per job:
--       entry id, job id, outcome (succeeded|failed|expired|retry|dead|gone), result or error.
-- The XACK reply decides: only the delivery that acknowledges an entry first writes its
-- outcome, so a job completed twice (a slow consumer and the one that reclaimed it) has one
-- result. 'retry' re-queues the job as a new entry, marked 'retry' (a consumer runs a first
-- delivery while marking it running, a retried one only after); 'dead' is 'failed' plus a
-- dead letter.
-- Returns the ids of the jobs this call made final.
redis.replicate_commands()
local done = {}
for i = 5, #KEYS do
  local key = KEYS[i]
  local base = 7 + (i - 5) * 4
  local entry, job_id = ARGV[base + 1], ARGV[base + 2]
  local outcome, value = ARGV[base + 3], ARGV[base + 4]
  if redis.call('XACK', KEYS[1], ARGV[1], entry) == 1 then
    local exists = redis.call('EXISTS', key) == 1
    if outcome == 'retry' then
      if exists then
        local job = redis.call('HMGET', key, 'input', 'deadline_at')
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*',
                   'id', job_id, 'input', job[1], 'deadline_at', job[2] or '', 'retry', '1')
        redis.call('HSET', key, 'status', 'queued', 'error', value)
      else
        done[#done + 1] = job_id
      end
    else
      if exists and outcome ~= 'gone' then
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
      end
      done[#done + 1] = job_id
    end
  end
end
if #done > 0 then
  redis.call('DECRBY', KEYS[2], #done)
  redis.call('INCRBY', KEYS[3], #done)
  redis.call(ARGV[7], ARGV[4], table.concat(done, ','))
end
return done

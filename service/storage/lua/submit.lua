-- KEYS: stream, backlog counter, completed counter, then per job: its hash and its
--       idempotency key (the job hash again when there is none: every key a call declares is
--       under the prefix, as a restricted ACL user requires)
-- ARGV: created_at, TTL s, max queue (0: no admission), stream MAXLEN, deadline_at ('' for
--       none), enqueue ('1' to XADD), owner (the API key's id; '' with auth off), webhook URL
--       ('' for none), webhook events ('start', 'completed' or 'start,completed'),
--       then per job: job id, input JSON, body digest ('' without an idempotency key)
-- Returns per job {'ok', backlog} | {'full', backlog, completed} | {'duplicate', id} |
--       {'conflict', id}: a batch of one is a single submit, and each job of a batch is
--       admitted or refused alone.
-- A job id is new for each submit: a job hash that exists already means this very call ran
-- before (a client's retry after a reply it lost), and it is answered as then, adding nothing,
-- so that no retry queues a job twice.
redis.replicate_commands()
local max_queue = tonumber(ARGV[3])
local out = {}
for n = 1, (#KEYS - 3) / 2 do
  local key, idem = KEYS[2 + 2 * n], KEYS[3 + 2 * n]
  local job_id, input, digest = ARGV[7 + 3 * n], ARGV[8 + 3 * n], ARGV[9 + 3 * n]
  local answer
  local existing = false
  if redis.call('EXISTS', key) == 1 then
    answer = {'ok', tonumber(redis.call('GET', KEYS[2]) or '0')}
  elseif digest ~= '' then
    existing = redis.call('GET', idem)
  end
  if answer then
    -- this very submit, answered again
  elseif existing then
    local sep = string.find(existing, ' ', 1, true)
    if string.sub(existing, sep + 1) == digest then
      answer = {'duplicate', string.sub(existing, 1, sep - 1)}
    else
      answer = {'conflict', string.sub(existing, 1, sep - 1)}
    end
  else
    local backlog = tonumber(redis.call('GET', KEYS[2]) or '0')
    if max_queue > 0 and backlog >= max_queue then
      answer = {'full', backlog, tonumber(redis.call('GET', KEYS[3]) or '0')}
    else
      local fields = {'status', 'queued', 'input', input, 'created_at', ARGV[1], 'attempts', 0}
      if ARGV[5] ~= '' then
        fields[#fields + 1] = 'deadline_at'
        fields[#fields + 1] = ARGV[5]
      end
      if ARGV[7] ~= '' then
        fields[#fields + 1] = 'owner'
        fields[#fields + 1] = ARGV[7]
      end
      if ARGV[8] ~= '' then
        fields[#fields + 1] = 'webhook'
        fields[#fields + 1] = ARGV[8]
        fields[#fields + 1] = 'webhook_events'
        fields[#fields + 1] = ARGV[9]
      end
      if ARGV[6] == '1' then
        -- The entry's id is kept with the job: a cancel takes an entry no consumer read yet
        -- out of the stream, so that nothing runs it.
        fields[#fields + 1] = 'entry'
        fields[#fields + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
                                         'id', job_id, 'input', input, 'deadline_at', ARGV[5])
        backlog = redis.call('INCR', KEYS[2])
      end
      redis.call('HSET', key, unpack(fields))
      redis.call('EXPIRE', key, ARGV[2])
      if digest ~= '' then
        redis.call('SET', idem, job_id .. ' ' .. digest, 'EX', ARGV[2])
      end
      answer = {'ok', backlog}
    end
  end
  out[n] = answer
end
return out

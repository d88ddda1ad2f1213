"""Lua scripts: each multi-key step of a job's life is one atomic round trip.

`redis.replicate_commands()` lets Redis 6.2 run XADD with an auto id after reads (it is the
default, and a no-op, from Redis 7).
"""

# KEYS: job hash, stream, backlog counter, completed counter, idempotency key (the job hash
#       again when there is none: every key a call declares is under the prefix, as a
#       restricted ACL user requires)
# ARGV: job id, input JSON, created_at, TTL s, max queue (0: no admission), stream MAXLEN,
#       deadline_at ('' for none), body digest ('' without an idempotency key),
#       enqueue ('1' to XADD), owner (the API key's id; '' with auth off)
# Returns {'ok', backlog} | {'full', backlog, completed} | {'duplicate', id} | {'conflict', id}
SUBMIT = """
redis.replicate_commands()
local idem = KEYS[5]
if ARGV[8] ~= '' then
  local existing = redis.call('GET', idem)
  if existing then
    local sep = string.find(existing, ' ', 1, true)
    local job_id = string.sub(existing, 1, sep - 1)
    if string.sub(existing, sep + 1) == ARGV[8] then
      return {'duplicate', job_id}
    end
    return {'conflict', job_id}
  end
end
local backlog = tonumber(redis.call('GET', KEYS[3]) or '0')
local max_queue = tonumber(ARGV[5])
if max_queue > 0 and backlog >= max_queue then
  return {'full', backlog, tonumber(redis.call('GET', KEYS[4]) or '0')}
end
local fields = {'status', 'queued', 'input', ARGV[2], 'created_at', ARGV[3], 'attempts', 0}
if ARGV[7] ~= '' then
  table.insert(fields, 'deadline_at')
  table.insert(fields, ARGV[7])
end
if ARGV[10] ~= '' then
  table.insert(fields, 'owner')
  table.insert(fields, ARGV[10])
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ARGV[9] == '1' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*',
             'id', ARGV[1], 'input', ARGV[2], 'deadline_at', ARGV[7])
  backlog = redis.call('INCR', KEYS[3])
end
if ARGV[8] ~= '' then
  redis.call('SET', idem, ARGV[1] .. ' ' .. ARGV[8], 'EX', ARGV[4])
end
return {'ok', backlog}
"""

# KEYS: the job hashes of one batch.   ARGV: now
# Per job, {attempts, created_at}: attempts counts this delivery too; -1 if the job is already
# final (another consumer finished it), -2 if its hash is gone (expired).
MARK_RUNNING = """
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
"""

# KEYS: stream, backlog, completed, dead-letter stream, then the job hashes of the batch.
# ARGV: group, TTL s, now, done channel, stream MAXLEN, dead-letter MAXLEN, then per job:
#       entry id, job id, outcome (succeeded|failed|expired|retry|dead|gone), result or error.
# The XACK reply decides: only the delivery that acknowledges an entry first writes its
# outcome, so a job completed twice (a slow consumer and the one that reclaimed it) has one
# result. 'retry' re-queues the job as a new entry; 'dead' is 'failed' plus a dead letter.
# Returns the ids of the jobs this call made final.
FINISH_BATCH = """
redis.replicate_commands()
local done = {}
for i = 5, #KEYS do
  local key = KEYS[i]
  local base = 6 + (i - 5) * 4
  local entry, job_id = ARGV[base + 1], ARGV[base + 2]
  local outcome, value = ARGV[base + 3], ARGV[base + 4]
  if redis.call('XACK', KEYS[1], ARGV[1], entry) == 1 then
    local exists = redis.call('EXISTS', key) == 1
    if outcome == 'retry' then
      if exists then
        local job = redis.call('HMGET', key, 'input', 'deadline_at')
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*',
                   'id', job_id, 'input', job[1], 'deadline_at', job[2] or '')
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
  redis.call('PUBLISH', ARGV[4], table.concat(done, ','))
end
return done
"""

# KEYS: stream.   ARGV: group, idle threshold ms, the caller's consumer name
# Deletes consumers with nothing pending and idle past the threshold, atomically, so a
# consumer that read entries a moment ago cannot lose them from the pending list. A live
# consumer that is deleted is made again by its next read. Returns how many were deleted.
FORGET_IDLE_CONSUMERS = """
redis.replicate_commands()
local deleted = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #consumer, 2 do
    fields[consumer[i]] = consumer[i + 1]
  end
  if fields['pending'] == 0 and fields['idle'] > tonumber(ARGV[2])
     and fields['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    deleted = deleted + 1
  end
end
return deleted
"""

# KEYS: stream, backlog counter.   ARGV: group
# Returns {backlog, id of the oldest pending entry or '', id of the oldest undelivered or ''}:
# the oldest job not yet final is one of the two. Errors (no stream or group yet) read as none.
SAMPLE_QUEUE = """
local backlog = tonumber(redis.call('GET', KEYS[2]) or '0')
local oldest_pending, oldest_new = '', ''
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok and pending[2] then oldest_pending = pending[2] end
local found, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if found then
  for _, group in ipairs(groups) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then
      local next_entry = redis.call('XRANGE', KEYS[1], '(' .. fields['last-delivered-id'], '+',
                                    'COUNT', 1)
      if next_entry[1] then oldest_new = next_entry[1][1] end
    end
  end
end
return {backlog, oldest_pending, oldest_new}
"""

# KEYS: one client's bucket.   ARGV: emission interval (µs per request), burst
# GCRA (the generic cell rate algorithm): the key holds the theoretical arrival time (TAT) of
# the client's next request, in µs on Redis's clock, so every API process on every host
# shares one clock and one limit. A request is allowed while the TAT is at most `burst`
# intervals ahead of now; the key expires when the bucket is full again.
# Returns 0 when the request is allowed, else the µs until it would be.
RATE_LIMIT = """
redis.replicate_commands()
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - interval * tonumber(ARGV[2])
if allowed_at > now then
  return allowed_at - now
end
local ttl_ms = math.ceil((next_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return 0
"""

-- KEYS: job hash, stream, backlog counter, completed counter, idempotency key (the job hash
--       again when there is none: every key a call declares is under the prefix, as a
--       restricted ACL user requires)
-- ARGV: job id, input JSON, created_at, TTL s, max queue (0: no admission), stream MAXLEN,
--       deadline_at ('' for none), body digest ('' without an idempotency key),
--       enqueue ('1' to XADD), owner (the API key's id; '' with auth off)
-- Returns {'ok', backlog} | {'full', backlog, completed} | {'duplicate', id} | {'conflict', id}
-- A job id is new for each submit: a job hash that exists already means this very call ran
-- before (a client's retry after a reply it lost), and it is answered as then, adding nothing,
-- so that no retry queues a job twice.
redis.replicate_commands()
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'ok', tonumber(redis.call('GET', KEYS[3]) or '0')}
end
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

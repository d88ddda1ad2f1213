-- KEYS: job hash.   Returns its fields, or nothing when it does not exist.
-- Marks the job as watched by an event stream (mark_running then announces its start on the
-- done channel), and reads it, in one step: a start between the mark and the read is announced.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
redis.call('HSET', KEYS[1], 'watch', '1')
return redis.call('HGETALL', KEYS[1])

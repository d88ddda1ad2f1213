-- KEYS: job hash, completed counter
-- ARGV: status, 'result' or 'error', its value, finished_at, TTL s, the publish command, the
--       done channel, job id
-- A job that never went through the stream (the background backend) ends here, unless it was
-- canceled meanwhile: then its result is dropped. Returns 1 when it wrote the outcome.
if redis.call('HGET', KEYS[1], 'status') == 'canceled' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3], 'finished_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('INCR', KEYS[2])
redis.call(ARGV[6], ARGV[7], ARGV[8])
return 1

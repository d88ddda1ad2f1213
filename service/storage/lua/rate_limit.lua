-- KEYS: one client's bucket.   ARGV: emission interval (µs per request), burst
-- GCRA (the generic cell rate algorithm): the key holds the theoretical arrival time (TAT) of
-- the client's next request, in µs on Redis's clock, so every API process on every host
-- shares one clock and one limit. A request is allowed while the TAT is at most `burst`
-- intervals ahead of now; the key expires when the bucket is full again.
-- Returns 0 when the request is allowed, else the µs until it would be.
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

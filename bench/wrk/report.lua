-- Shared by the wrk scripts: one JSON line with the run's counts and latency distribution,
-- which bench/load.py parses. Latencies are in microseconds, as wrk records them.
local function cdf(latency)
  local points = {}
  for _, q in ipairs({1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 99, 99.5, 99.9, 99.99, 100}) do
    points[#points + 1] = string.format("[%s,%d]", q, latency:percentile(q))
  end
  return "[" .. table.concat(points, ",") .. "]"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%f,"max":%d,"cdf":%s}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, cdf(latency)))
end

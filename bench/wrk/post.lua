-- POST /predict with a constant body: sync, or async when BENCH_ASYNC=true (the seed's header).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

wrk.method = "POST"
wrk.path = "/predict"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
if os.getenv("BENCH_CLOSE") == "true" then
  wrk.headers["Connection"] = "close"  -- a new connection for every request
end
if os.getenv("BENCH_ASYNC") == "true" then
  wrk.headers["async_mode"] = "true"
end

-- GET /predict/{id}, round robin over the ids listed one a line in BENCH_IDS_FILE.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local paths = {}
for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
  paths[#paths + 1] = "/predict/" .. line
end
local next_index = 0

function request()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index])
end

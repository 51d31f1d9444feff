-- wrk script: POST one fixed JSON body to the URL, and print a machine-readable summary.
--
--   wrk -t1 -c8 -d15s -s bench/wrk/post.lua URL -- BODY_FILE [BEARER_TOKEN[,BEARER_TOKEN...]]
--
-- The body is read once per thread from BODY_FILE (bench/run.py writes one per target and shape).
-- Several tokens (comma-separated) are sent in turn, one per request: several callers, whose
-- requests are never the same upstream call (bench/run.py --callers).
-- On completion one line `BENCH_JSON {...}` carries the counts and the latency percentiles in
-- microseconds; bench/run.py parses it.

local requests = {}
local next_request = 0

function init(args)
  local path = args[1]
  assert(path, "usage: wrk ... -s post.lua URL -- BODY_FILE [BEARER_TOKEN[,BEARER_TOKEN...]]")
  local file = assert(io.open(path, "rb"))
  local body = file:read("*a")
  file:close()
  for token in string.gmatch(args[2] or "demo-token", "[^,]+") do
    local headers = {
      ["Host"] = wrk.host .. ":" .. wrk.port,
      ["Content-Type"] = "application/json",
      ["Accept"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
    }
    requests[#requests + 1] = wrk.format("POST", wrk.path, headers, body)
  end
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
